// POST /api/v1/rollouts/plan over HTTP against one real operator process on a Postgres server,
// with a fleet seeded straight into its database (default 10,000 nodes in 3 regions, 20
// instances a node of 2,000 deployments × 100 replicas, 20 % spare room: 200,000 instances),
// for a region-by-region spec drained by migration. While each plan is in flight a separate
// thread polls GET /health every 10 ms and records its latency and the longest gap between two
// answers: the operator's event loop must stay free (issue 9 goal 3: plan < 1 s, /health never
// held more than 50 ms). Writes bench/results/plan-http.json.
//
//   npm run bench:plan-http [-- --nodes 10000 --runs 3 --postgres postgres://postgres@127.0.0.1:5432/postgres]
//                           [--profile DIR]   (the operator's CPU profiles, written when it stops)
//                           [--in-process]    (the operator in this process, its fleet reconciler idle)
//                           [--delete-between N]  (N instances deleted before each run: the dry run's deletion path)
//
// The database (`drydock_bench_plan`) is created fresh on that server and dropped afterwards.
// On 2 cores the operator, its plan worker, Postgres and this client share the CPU.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import http from 'node:http';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import pino from 'pino';
import { freePort } from '../src/agent/drivers/process-driver.js';
import { migrateUp } from '../src/store/migrator.js';
import { OPERATOR_DEFAULTS, startOperator } from '../src/operator/server.js';
import { openDb } from '../src/store/open.js';
import { getJson, metricValue, waitForResync } from './http-load.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10000' },
    regions: { type: 'string', default: '3' },
    'instances-per-node': { type: 'string', default: '20' },
    replicas: { type: 'string', default: '100' },
    spare: { type: 'string', default: '0.2' },
    runs: { type: 'string', default: '3' },
    postgres: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    database: { type: 'string', default: 'drydock_bench_plan' },
    bundle: { type: 'string', default: 'dist/drydock.mjs' },
    out: { type: 'string', default: 'bench/results/plan-http.json' },
    /** Write the operator's CPU profiles (its thread and the plan worker) into this directory. */
    profile: { type: 'string' },
    /**
     * Run the operator in this process (its plan worker too) with the fleet reconciler's idle
     * pass every hour instead of every 500 ms: /health then shows the plan alone, not the
     * reconciler's own whole-fleet loads beside it.
     */
    'in-process': { type: 'boolean', default: false },
    /**
     * Delete this many instances (straight in the database) before each run after the first: every
     * dry run then finds rows gone since the plan worker's copy, as during a rollout's migrations.
     */
    'delete-between': { type: 'string', default: '0' },
  },
});
const nodeCount = Number(values.nodes);
const regionCount = Number(values.regions);
const perNode = Number(values['instances-per-node']);
const replicas = Number(values.replicas);
const runs = Math.max(1, Number(values.runs));
const maxInstances = Math.ceil(perNode / (1 - Number(values.spare)));
const dbName = values.database;
if (!/^[a-z_][a-z0-9_]*$/.test(dbName)) throw new Error(`--database must be a plain identifier, got ${dbName}`);
const adminUrl = values.postgres;
const url = new URL(adminUrl);
url.pathname = `/${dbName}`;
const databaseUrl = url.toString();

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Schema by the operator's own migrator, then the fleet in batched inserts (unnest of arrays). */
async function seed(): Promise<{ instances: number; deployments: number; seconds: number }> {
  const started = performance.now();
  await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin(`CREATE DATABASE ${dbName}`);
  const db = await openDb({ databaseUrl });
  try {
    await migrateUp(db);
  } finally {
    await db.close();
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const regions = Array.from({ length: regionCount }, (_, r) => ['us-east', 'eu-west', 'ap-south'][r] ?? `region-${r}`);
    const pad = (n: number) => String(n).padStart(5, '0');
    const ids = Array.from({ length: nodeCount }, (_, n) => `node-${pad(n)}`);
    await client.query(
      `INSERT INTO nodes (id, hostname, region, role, max_instances, components, agent_version, last_heartbeat_at)
       SELECT id, hostname, region, 'worker', $4, '{"node-agent": "1.0.0"}', '1.0.0', now()
         FROM unnest($1::text[], $2::text[], $3::text[]) AS n(id, hostname, region)`,
      [ids, ids.map((_, n) => `host-${pad(n)}`), ids.map((_, n) => regions[n % regionCount]), maxInstances],
    );
    const total = nodeCount * perNode;
    const deploymentCount = Math.max(1, Math.ceil(total / replicas));
    const deployments = Array.from({ length: deploymentCount }, (_, d) => `dep-${d}`);
    await client.query(
      `INSERT INTO deployments (id, name, replicas, min_available, workload)
       SELECT id, 'app-' || substr(id, 5), $2, $3, '{"command": "app"}' FROM unnest($1::text[]) AS d(id)`,
      [deployments, replicas, Math.max(0, replicas - 1)],
    );
    const batch = 50_000;
    for (let from = 0; from < total; from += batch) {
      const count = Math.min(batch, total - from);
      const instance = Array.from({ length: count }, (_, j) => from + j);
      await client.query(
        `INSERT INTO instances (id, deployment_id, node_id, desired, status, healthy, published, port)
         SELECT id, deployment_id, node_id, 'running', 'running', true, true, 20000 + ord::int % 40000
           FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS i(id, deployment_id, node_id, ord)`,
        [
          instance.map((i) => `inst-${String(i).padStart(6, '0')}-${(i * 2654435761) % 4294967296}`),
          instance.map((i) => deployments[i % deploymentCount]),
          instance.map((i) => ids[Math.floor(i / perNode)]),
        ],
      );
    }
    await client.query('ANALYZE');
    return { instances: total, deployments: deploymentCount, seconds: (performance.now() - started) / 1000 };
  } finally {
    await client.end();
  }
}

// The /health poller runs in a thread of its own, so what this thread does (receiving a 40 MB
// plan) never shows up as the operator's latency.
const POLLER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let running = false, samples = [], gaps = [], last = 0;
function probe() {
  if (!running) return;
  const sent = performance.now();
  const req = http.get(workerData.url, { agent }, (res) => {
    res.resume();
    res.on('end', () => {
      const now = performance.now();
      samples.push(now - sent);
      if (last > 0) gaps.push(now - last);
      last = now;
      setTimeout(probe, 10);
    });
  });
  req.on('error', () => setTimeout(probe, 10));
}
parentPort.on('message', (m) => {
  if (m === 'start') { running = true; samples = []; gaps = []; last = 0; probe(); }
  else { running = false; parentPort.postMessage({ samples, gaps }); }
});`;

function startPoller(base: string): { start: () => void; stop: () => Promise<{ samples: number[]; gaps: number[] }>; close: () => Promise<number> } {
  const worker = new Worker(POLLER, { eval: true, workerData: { url: `${base}/health` } });
  return {
    start: () => worker.postMessage('start'),
    stop: () =>
      new Promise((done) => {
        worker.once('message', done);
        worker.postMessage('stop');
      }),
    close: () => worker.terminate(),
  };
}

/** POSTs and reads the whole answer; `headersMs`: when its status line and headers came (the plan streams its body after). */
function post(base: string, path: string, body: unknown): Promise<{ status: number; body: Buffer; headersMs: number }> {
  return new Promise((resolveReply, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const sent = performance.now();
    const req = http.request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      const headersMs = performance.now() - sent;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveReply({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headersMs }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The operator's /metrics: its event-loop delay max since the last scrape (prom-client resets it at each), and a counter's series. */
const metricsAgent = new http.Agent({ keepAlive: false });

async function operatorMetrics(base: string): Promise<{ loopDelayMaxMs: number; planReads: Record<string, number>; value: (series: string) => number }> {
  const text = (await getJson(metricsAgent, `${base}/metrics`, {})).text;
  const planReads: Record<string, number> = {};
  for (const m of text.matchAll(/^drydock_plan_instance_reads_total\{read="(\w+)"\} (\d+)/gm)) planReads[m[1] as string] = Number(m[2]);
  return { loopDelayMaxMs: Math.round(metricValue(text, 'nodejs_eventloop_lag_max_seconds') * 10_000) / 10, planReads, value: (series) => metricValue(text, series) };
}

const deleteBetween = Math.max(0, Number(values['delete-between']));

/** Deletes `count` instances, as finished migrations do (their old rows go). */
async function deleteInstances(count: number): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('DELETE FROM instances WHERE id IN (SELECT id FROM instances ORDER BY random() LIMIT $1)', [count]);
  } finally {
    await client.end();
  }
}

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);
};
const round = (x: number) => Math.round(x * 10) / 10;

const seeded = await seed();
console.log(`seeded ${nodeCount} nodes, ${seeded.deployments} deployments, ${seeded.instances} instances in ${seeded.seconds.toFixed(1)} s`);

let base: string;
let stopOperator: () => Promise<void>;
let operatorStderr = '';
let operatorExited = () => false;
if (values['in-process']) {
  const db = await openDb({ databaseUrl });
  const running = await startOperator({
    ...OPERATOR_DEFAULTS,
    db,
    listen: '127.0.0.1:0',
    migrate: false,
    reconcileIntervalMs: 3_600_000,
    version: 'bench',
    log: pino({ level: 'warn' }),
  });
  base = running.url;
  stopOperator = async () => {
    await running.close();
    await db.close();
  };
} else {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const profile = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${resolve(values.profile)}`] : [];
  const operator: ChildProcess = spawn(process.execPath, [...profile, resolve(values.bundle), 'operator', '--listen', `127.0.0.1:${port}`, '--database-url', databaseUrl], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DRYDOCK_LOG_FORMAT: 'json' },
  });
  operator.stderr?.on('data', (chunk: Buffer) => {
    operatorStderr = (operatorStderr + chunk.toString()).slice(-4000);
  });
  operatorExited = () => operator.exitCode !== null;
  stopOperator = async () => {
    operator.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    if (operator.exitCode === null) operator.kill('SIGKILL');
  };
}
const poller = startPoller(base);

try {
  const readyBy = Date.now() + 60_000;
  for (;;) {
    const status = await new Promise<number>((done) => http.get(`${base}/health`, (res) => (res.resume(), done(res.statusCode ?? 0))).on('error', () => done(0)));
    if (status === 200) break;
    if (Date.now() > readyBy || operatorExited()) throw new Error(`operator did not start: ${operatorStderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // The start-up resync reconciles every deployment once, loading their instances: measured
  // beside it, a plan and /health would show the resync. Wait until its queue is empty twice in a row.
  const settled = await waitForResync(metricsAgent, base, seeded.deployments);
  console.log(`start-up resync of ${seeded.deployments} deployments settled in ${settled.toFixed(1)} s`);
  // The operator at rest, for comparison: whatever else it does on its own shows here too.
  await operatorMetrics(base);
  poller.start();
  await new Promise((r) => setTimeout(r, 3000));
  const idle = await poller.stop();
  const idleLoop = await operatorMetrics(base);

  const spec = {
    name: 'bench-plan-http',
    target: { component: 'node-agent', version: '2.0.0' },
    selector: { role: 'worker' },
    strategy: {
      order: 'region-by-region',
      batch: { percent: 5 },
      maxUnavailablePerRegion: Math.max(1, Math.ceil(nodeCount / regionCount / 10)),
      drain: { mode: 'migrate' },
    },
  };
  const measured: {
    first: boolean;
    plan_ms: number;
    headers_ms: number;
    status: number;
    bytes: number;
    moves: number;
    batches: number;
    health_max_ms: number;
    health_p99_ms: number;
    health_max_gap_ms: number;
    health_samples: number;
    operator_loop_delay_max_ms: number;
  }[] = [];
  // One run more than asked: the first pays for starting the plan worker and compiling its code.
  for (let run = 0; run <= runs; run++) {
    if (run > 0 && deleteBetween > 0) await deleteInstances(deleteBetween);
    await operatorMetrics(base);
    poller.start();
    const started = performance.now();
    const reply = await post(base, '/api/v1/rollouts/plan', spec);
    const planMs = performance.now() - started;
    const health = await poller.stop();
    const loop = await operatorMetrics(base);
    if (reply.status !== 200) throw new Error(`plan answered ${reply.status}: ${reply.body.toString().slice(0, 500)}`);
    // Parsed only now: in process, parsing 40 MB would hold the operator's own event loop.
    const body = JSON.parse(reply.body.toString()) as { plan: { moves: unknown[]; batches: unknown[] } };
    measured.push({
      first: run === 0,
      plan_ms: Math.round(planMs),
      headers_ms: Math.round(reply.headersMs),
      status: reply.status,
      bytes: reply.body.length,
      moves: body.plan.moves.length,
      batches: body.plan.batches.length,
      health_max_ms: round(Math.max(0, ...health.samples)),
      health_p99_ms: round(percentile(health.samples, 99)),
      health_max_gap_ms: round(Math.max(0, ...health.gaps)),
      health_samples: health.samples.length,
      operator_loop_delay_max_ms: loop.loopDelayMaxMs,
    });
    const m = measured[measured.length - 1] as (typeof measured)[number];
    console.log(
      `  run ${run}${m.first ? ' (first)' : ''}: plan ${m.plan_ms} ms (headers at ${m.headers_ms} ms), ${m.moves} moves in ${m.batches} batches, ${(m.bytes / 1e6).toFixed(1)} MB; /health max ${m.health_max_ms} ms (p99 ${m.health_p99_ms}, longest gap ${m.health_max_gap_ms} ms, ${m.health_samples} probes); operator event-loop delay max ${m.operator_loop_delay_max_ms} ms`,
    );
    await new Promise((r) => setTimeout(r, 500));
  }
  const timed = measured.filter((m) => !m.first);
  const final = await operatorMetrics(base);
  const median = (xs: number[]) => percentile(xs, 50);
  const report = {
    operator: values['in-process'] ? 'in process, fleet reconciler idle pass hourly' : `${values.bundle} (child process)`,
    config: { nodes: nodeCount, regions: regionCount, instances: seeded.instances, deployments: seeded.deployments, max_instances_per_node: maxInstances, runs, delete_between: deleteBetween, spec },
    seed_s: round(seeded.seconds),
    /** The machine is shared: its 1-minute load average when the runs ended (2 cores here). */
    load_average: round(loadavg()[0] as number),
    idle: {
      health_max_ms: round(Math.max(0, ...idle.samples)),
      health_p99_ms: round(percentile(idle.samples, 99)),
      health_max_gap_ms: round(Math.max(0, ...idle.gaps)),
      health_samples: idle.samples.length,
      operator_loop_delay_max_ms: idleLoop.loopDelayMaxMs,
    },
    plan_ms_median: median(timed.map((m) => m.plan_ms)),
    health_max_ms_during_plan: Math.max(...timed.map((m) => m.health_max_ms)),
    health_max_gap_ms_during_plan: Math.max(...timed.map((m) => m.health_max_gap_ms)),
    operator_loop_delay_max_ms_during_plan: Math.max(...timed.map((m) => m.operator_loop_delay_max_ms)),
    /** How the dry runs read the instances (the first reads every row; later ones what changed since). */
    plan_instance_reads: final.planReads,
    /** The fleet reconciler's liveness passes over the run (the seeded nodes never heartbeat: every pass sees them all silent). */
    liveness_passes: { count: final.value('drydock_reconcile_duration_seconds_count{queue="liveness"}'), mean_ms: round((1000 * final.value('drydock_reconcile_duration_seconds_sum{queue="liveness"}')) / final.value('drydock_reconcile_duration_seconds_count{queue="liveness"}')) },
    runs: measured,
  };
  const out = resolve(values.out);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(
    `plan over HTTP: ${nodeCount} nodes, ${seeded.instances} instances: median ${report.plan_ms_median} ms of ${runs} run(s) after the first; /health max ${report.health_max_ms_during_plan} ms during plans (longest gap ${report.health_max_gap_ms_during_plan} ms; at rest max ${report.idle.health_max_ms} ms); operator event-loop delay max ${report.operator_loop_delay_max_ms_during_plan} ms during plans (${report.idle.operator_loop_delay_max_ms} ms at rest); instance reads ${JSON.stringify(report.plan_instance_reads)}; liveness passes ${report.liveness_passes.count}, mean ${report.liveness_passes.mean_ms} ms; load average ${report.load_average}; wrote ${values.out}`,
  );
} finally {
  await poller.close();
  await stopOperator();
  await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
}
