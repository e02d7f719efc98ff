// Heartbeat ingest: how many agent heartbeats per second the store absorbs when the operator
// batches them (HeartbeatBuffer) versus writing each one alone. Prints a summary and writes
// bench/results/heartbeats.json. Usage: npm run bench [-- --nodes 2000 --postgres URL]
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Db } from '../src/store/db.js';
import { insertDeployment } from '../src/store/deployments.js';
import { insertInstances } from '../src/store/instances.js';
import { migrateUp } from '../src/store/migrator.js';
import { type HeartbeatRecord, recordHeartbeats, registerNode } from '../src/store/nodes.js';
import { openDb } from '../src/store/open.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '2000' },
    'instances-per-node': { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    postgres: { type: 'string' },
  },
});
const nodes = Number(values.nodes);
const perNode = Number(values['instances-per-node']);
const rounds = Number(values.rounds);

async function seed(db: Db): Promise<HeartbeatRecord[]> {
  const deploymentId = randomUUID();
  await insertDeployment(db, deploymentId, { name: `bench-${deploymentId.slice(0, 8)}`, replicas: nodes * perNode, min_available: 0, workload: { command: 'true' } });
  const records: HeartbeatRecord[] = [];
  for (let n = 0; n < nodes; n++) {
    const { id } = await registerNode(
      db,
      { hostname: `bench-${deploymentId.slice(0, 8)}-${n}`, region: `r${n % 3}`, role: 'worker', max_instances: perNode, agent_version: '1.0.0', protocol_version: 1 },
      randomUUID(),
    );
    const instances = Array.from({ length: perNode }, () => ({ id: randomUUID(), deploymentId, nodeId: id, replaces: null }));
    await insertInstances(db, instances);
    records.push({
      nodeId: id,
      agentVersion: '1.0.0',
      protocolVersion: 1,
      components: { 'node-agent': '1.0.0' },
      instances: instances.map((i, k) => ({ id: i.id, status: 'running', healthy: true, pid: 1000 + k, port: 20000 + k })),
    });
  }
  return records;
}

/** Flip health each round so every row really changes (unchanged rows are skipped by design). */
function round(records: HeartbeatRecord[], r: number): HeartbeatRecord[] {
  return records.map((h) => ({ ...h, instances: h.instances.map((i) => ({ ...i, healthy: r % 2 === 0 })) }));
}

async function measure(engine: string, db: Db) {
  await migrateUp(db);
  const records = await seed(db);
  let started = performance.now();
  for (let r = 0; r < rounds; r++) {
    const batch = round(records, r);
    for (let i = 0; i < batch.length; i += 1000) await recordHeartbeats(db, batch.slice(i, i + 1000));
  }
  const batchedPerSecond = (nodes * rounds) / ((performance.now() - started) / 1000);
  const single = records.slice(0, Math.min(500, nodes));
  started = performance.now();
  for (const h of round(single, 1)) await recordHeartbeats(db, [h]);
  const singlePerSecond = single.length / ((performance.now() - started) / 1000);
  return { engine, nodes, instances_per_node: perNode, rounds, batched_heartbeats_per_s: Math.round(batchedPerSecond), single_heartbeats_per_s: Math.round(singlePerSecond) };
}

const results = [];
const dir = mkdtempSync(join(tmpdir(), 'drydock-bench-'));
try {
  const embedded = await openDb({ dataDir: dir, purpose: 'bench' });
  results.push(await measure('pglite', embedded));
  await embedded.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (values.postgres) {
  const server = await openDb({ databaseUrl: values.postgres });
  results.push(await measure('postgres', server));
  await server.close();
}

for (const r of results) {
  console.log(
    `${r.engine.padEnd(8)} ${r.nodes} nodes x ${r.instances_per_node} instances: batched ${r.batched_heartbeats_per_s} heartbeats/s, one at a time ${r.single_heartbeats_per_s} heartbeats/s (x${(r.batched_heartbeats_per_s / r.single_heartbeats_per_s).toFixed(1)})`,
  );
}
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/heartbeats.json', `${JSON.stringify({ at: new Date().toISOString(), results }, null, 2)}\n`);
console.log('wrote bench/results/heartbeats.json');
