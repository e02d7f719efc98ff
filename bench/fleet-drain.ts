// A drain in a large fleet (issue 9, goal 2): seeds a Postgres database with N nodes and
// deployments × replicas instances (default 10,000 nodes, 200,000 instances, all healthy and
// serving), starts the real operator bundle on it, waits for its start-up resync to settle, then
// drains a few nodes one after another and measures, for each, the drain request's latency and
// the time from the request to the first `instance.migration_started` event — the node's keyed
// pass, not a pass over the fleet. Prints a summary and writes bench/results/fleet-drain.json.
//
//   npm run bench:fleet-drain -- [--nodes 10000] [--deployments 2000] [--replicas 100] [--drains 3]
//                                [--postgres postgres://postgres@127.0.0.1:5432/postgres]
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { freePort } from '../src/agent/drivers/process-driver.js';
import { migrateUp } from '../src/store/migrator.js';
import { PoolDb } from '../src/store/db.js';
import { getJson, postJson, waitForResync } from './http-load.js';
import { appendRun } from './results.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10000' },
    regions: { type: 'string', default: '3' },
    deployments: { type: 'string', default: '2000' },
    replicas: { type: 'string', default: '100' },
    spare: { type: 'string', default: '0.2' },
    drains: { type: 'string', default: '3' },
    postgres: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    out: { type: 'string', default: 'bench/results/fleet-drain.json' },
  },
});
const nodeCount = Number(values.nodes);
const regionCount = Number(values.regions);
const deploymentCount = Number(values.deployments);
const replicas = Number(values.replicas);
const drains = Number(values.drains);
const instanceCount = deploymentCount * replicas;
const perNode = Math.ceil(instanceCount / nodeCount);
const maxInstances = Math.ceil(perNode / (1 - Number(values.spare)));

const dbName = `drydock_bench_drain_${process.pid}`;
const admin = new pg.Client({ connectionString: values.postgres });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
await admin.end();
const url = new URL(values.postgres);
url.pathname = `/${dbName}`;
const databaseUrl = url.toString();
let operator: ChildProcess | undefined;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

async function cleanup() {
  if (operator && operator.exitCode === null) {
    operator.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    if (operator.exitCode === null) operator.kill('SIGKILL');
  }
  agent.destroy();
  const drop = new pg.Client({ connectionString: values.postgres });
  await drop.connect();
  await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await drop.end();
}

try {
  // Seed: schema by the operator's own migrations, rows in batches of 20,000 (STACK.md).
  const seedStarted = performance.now();
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const db = new PoolDb('postgres', pool);
  await migrateUp(db, { phase: 'pre' });
  const nodeIds = Array.from({ length: nodeCount }, (_, n) => `node-${String(n).padStart(5, '0')}`);
  for (let from = 0; from < nodeCount; from += 20_000) {
    const ids = nodeIds.slice(from, from + 20_000);
    await db.query(
      `INSERT INTO nodes (id, hostname, region, role, max_instances, agent_version, protocol_version, last_heartbeat_at, status, components)
       SELECT id, id, 'region-' || (row_number() OVER () - 1 + $2::int) % $3::int, 'worker', $4::int, '1.0.0', 1, now(), 'ready', '{"node-agent":"1.0.0"}'
         FROM unnest($1::text[]) AS u(id)`,
      [ids, from, regionCount, maxInstances],
    );
  }
  const deploymentIds = Array.from({ length: deploymentCount }, (_, d) => `dep-${String(d).padStart(5, '0')}`);
  await db.query(
    `INSERT INTO deployments (id, name, replicas, min_available, workload)
     SELECT id, id, $2::int, $2::int - 1, '{"command":"sleep"}' FROM unnest($1::text[]) AS u(id)`,
    [deploymentIds, replicas],
  );
  // Replica r of deployment d sits on node (d * replicas + r) mod N: every node holds about
  // `perNode` instances and no node holds two replicas of one deployment (replicas <= N).
  let seeded = 0;
  for (let from = 0; from < instanceCount; from += 20_000) {
    const count = Math.min(20_000, instanceCount - from);
    const ids: string[] = [];
    const deps: string[] = [];
    const nodes: string[] = [];
    for (let k = from; k < from + count; k++) {
      ids.push(`inst-${String(k).padStart(7, '0')}`);
      deps.push(deploymentIds[Math.floor(k / replicas)] as string);
      nodes.push(nodeIds[k % nodeCount] as string);
    }
    await db.query(
      `INSERT INTO instances (id, deployment_id, node_id, desired, status, healthy, published, port)
       SELECT id, dep, node, 'running', 'running', true, true, 40000 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, dep, node)`,
      [ids, deps, nodes],
    );
    seeded += count;
  }
  await db.query('ANALYZE');
  await db.close();
  const seedSeconds = (performance.now() - seedStarted) / 1000;
  console.log(`seeded ${nodeCount} nodes, ${deploymentCount} deployments, ${seeded} instances (${perNode}/node, max ${maxInstances}) in ${seedSeconds.toFixed(1)} s`);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // A grace of an hour: nothing heartbeats here, and liveness is not what this measures.
  operator = spawn(
    process.execPath,
    [resolve('dist/drydock.mjs'), 'operator', '--listen', `127.0.0.1:${port}`, '--database-url', databaseUrl, '--heartbeat-grace', '3600s'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DRYDOCK_LOG_FORMAT: 'json' } },
  );
  let stderr = '';
  operator.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const startedAt = performance.now();
  for (;;) {
    const health = await getJson(agent, `${base}/health`, {}).catch(() => undefined);
    if (health?.status === 200) break;
    if (performance.now() - startedAt > 120_000 || operator.exitCode !== null) throw new Error(`operator did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await waitForResync(agent, base, deploymentCount);
  const resyncSeconds = (performance.now() - startedAt) / 1000;
  console.log(`operator up and start-up resync of ${deploymentCount} deployments settled in ${resyncSeconds.toFixed(1)} s`);

  const runs: { node: string; request_ms: number; first_migration_ms: number; migrations: number }[] = [];
  for (let d = 0; d < drains; d++) {
    const node = nodeIds[Math.floor((d * nodeCount) / Math.max(1, drains)) + 1] as string;
    const lastEvent = JSON.parse((await getJson(agent, `${base}/api/v1/events?order=desc&limit=1`, {})).text) as { id: number }[];
    const after = lastEvent[0]?.id ?? 0;
    const t0 = performance.now();
    const reply = await postJson(agent, `${base}/api/v1/nodes/${node}/drain`, {}, {});
    const requestMs = performance.now() - t0;
    if (reply.status !== 202) throw new Error(`drain answered ${reply.status}: ${reply.text}`);
    let firstMs = Number.NaN;
    let migrations = 0;
    while (performance.now() - t0 < 60_000) {
      const events = JSON.parse((await getJson(agent, `${base}/api/v1/events?kind_prefix=instance.migration_started&after=${after}&limit=1000`, {})).text) as unknown[];
      if (events.length > 0) {
        firstMs = performance.now() - t0;
        migrations = events.length;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    runs.push({ node, request_ms: Number(requestMs.toFixed(1)), first_migration_ms: Number(firstMs.toFixed(1)), migrations });
    console.log(`drain ${node}: request ${requestMs.toFixed(0)} ms, first migration_started ${firstMs.toFixed(0)} ms after the request (${migrations} started)`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const result = {
    at: new Date().toISOString(),
    nodes: nodeCount,
    deployments: deploymentCount,
    instances: instanceCount,
    seed_s: Number(seedSeconds.toFixed(1)),
    startup_resync_s: Number(resyncSeconds.toFixed(1)),
    drains: runs,
    first_migration_ms_median: median(runs.map((r) => r.first_migration_ms)),
    request_ms_median: median(runs.map((r) => r.request_ms)),
  };
  console.log(`median: drain request ${result.request_ms_median} ms, first migration ${result.first_migration_ms_median} ms after the request (goal < 1000 ms)`);
  appendRun(values.out, result);
} finally {
  await cleanup();
}
