// Live migration of VMs (DESIGN.md §10), end to end on this machine: a real operator, three real
// agents hosting QEMU guests (TCG), the edge in front. One instance of a 2-replica VM deployment
// is moved back and forth --count times with POST /api/v1/instances/:id/migrate (each move is of
// the instance that now hosts the guest), while a client polls the deployment through the edge
// every 20 ms. Then (unless --skip-drain) a node hosting 3 VMs is drained (bench/vm-drain.ts).
// Reports QEMU's downtime / total / bytes, the move as the API sees it, failed client requests,
// whether the guest kept its boot id, and the processes' CPU; writes bench/results/migration.json.
//
//   npm run bench:migration -- [--count 20] [--memory-mb 128] [--downtime-limit-ms 300]
//                              [--move-deadline 60s] [--client-every-ms 20]
//                              [--skip-drain] [--drain-vms 3] [--drain-timeout 120s]
//                              [--postgres postgres://postgres@127.0.0.1:5432/postgres]
//                              [--out bench/results/migration.json]
//
// Without --postgres the operator runs on the embedded engine (PGlite) in the fleet's temp dir.
// On 2 shared cores the guests, QEMU's migration threads, the operator, the agents and this
// client compete for CPU: the numbers are what a busy small host does, not a quiet one.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { ApiCallError } from '../src/api-client.js';
import { freePort } from '../src/agent/drivers/process-driver.js';
import { processesMentioning } from '../src/demo/leftovers.js';
import { isAlive, LocalFleet, waitFor } from '../src/demo/local-fleet.js';
import { parseDuration } from '../src/domain/duration.js';
import type { DeploymentView } from '../src/store/deployments.js';
import type { EventRow } from '../src/store/events.js';
import type { MigrationView } from '../src/store/instance-migrations.js';
import type { InstanceView } from '../src/store/instances.js';
import { generateSigningKeyPair } from '../src/signing.js';
import { buildGuestImage } from '../src/vm/guest-image.js';
import { publishVmImage } from '../src/vm/publish-image.js';
import { ProcessSampler } from './http-load.js';
import { appendRun } from './results.js';
import { edgeRetries, instanceGuestStatus, latencySummary, measureVmDrain, movePhases, percentile, trafficThroughEdge, type VmDrainResult } from './vm-drain.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '20' },
    'memory-mb': { type: 'string', default: '128' },
    'downtime-limit-ms': { type: 'string', default: '300' },
    // The operator fails a move not completed by then (the guest stays where it was); this
    // bench waits that long plus 30 s before it gives up on the run.
    'move-deadline': { type: 'string', default: '60s' },
    'client-every-ms': { type: 'string', default: '20' },
    'skip-drain': { type: 'boolean', default: false },
    'drain-vms': { type: 'string', default: '3' },
    'drain-timeout': { type: 'string', default: '120s' },
    postgres: { type: 'string' },
    out: { type: 'string', default: 'bench/results/migration.json' },
  },
});
const count = Number(values.count);
const memoryMb = Number(values['memory-mb']);
const downtimeLimitMs = Number(values['downtime-limit-ms']);
const moveDeadlineMs = parseDuration(values['move-deadline']) ?? 60_000;
const clientEveryMs = Number(values['client-every-ms']);
const drainVms = Number(values['drain-vms']);
const drainTimeoutMs = parseDuration(values['drain-timeout']) ?? 120_000;
const GOALS = { downtimeP50Ms: 100, downtimeP99Ms: 300, totalP50Ms: 1500, clientFailed: 0, drainMs: 10_000 };
const DEPLOYMENT = 'vmweb';
// scripts/bench.mjs runs the bundle from dist/bench with the repo root as its working directory.
const root = process.cwd();
const t = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const met = (ok: boolean) => (ok ? 'MET' : 'NOT MET');

// The reference guest, rebuilt each run (~4 s; byte-identical, so it is the same image) from the
// kernel package the tests already downloaded into .cache/vm-debs.
const imageStarted = performance.now();
const image = await buildGuestImage({ outDir: join(root, '.cache/guest-image-bench'), cacheDir: join(root, '.cache/vm-debs') });
console.log(`guest image ${image.imageJson.name}@${image.imageJson.version} built in ${t(performance.now() - imageStarted)}`);

let databaseUrl: string | undefined;
let dbName: string | undefined;
if (values.postgres) {
  dbName = `drydock_bench_migration_${process.pid}`;
  const admin = new pg.Client({ connectionString: values.postgres });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const url = new URL(values.postgres);
  url.pathname = `/${dbName}`;
  databaseUrl = url.toString();
}

const fleet = new LocalFleet({ bin: join(root, 'dist/drydock.mjs'), dir: mkdtempSync(join(tmpdir(), 'drydock-bench-migration-')) });
let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  console.log('interrupted: stopping the fleet');
});

/** Every process whose command line names the fleet's dir (agents, operator, edge, QEMU) and is still alive. */
const fleetProcessesAlive = () => processesMentioning(fleet.dir);

/** Stops the fleet; returns the pids that outlived `fleet.stop()` (then killed by pid). */
async function cleanup(ok: boolean): Promise<number[]> {
  await fleet.stop();
  // Anything still running from our dir (a QEMU whose pid the API never showed) is ours: by pid.
  const leaked = [...new Set([...fleetProcessesAlive(), ...[...fleet.spawnedPids, ...fleet.instancePids].filter(isAlive)])];
  for (const pid of leaked) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  if (leaked.length > 0) await new Promise((r) => setTimeout(r, 1000));
  const stillAlive = leaked.filter(isAlive);
  if (stillAlive.length > 0) console.log(`cleanup: still alive after SIGKILL: ${stillAlive.join(', ')}`);
  if (dbName && values.postgres) {
    const drop = new pg.Client({ connectionString: values.postgres });
    await drop.connect();
    await drop.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await drop.end();
  }
  if (ok && leaked.length === 0) rmSync(fleet.dir, { recursive: true, force: true });
  else console.log(`logs kept in ${fleet.dir}`);
  return leaked;
}

/** The target instance as the API shows it, its QEMU's CPU time, and whether its guest answers /healthz directly. */
async function describeTarget(instanceId: string): Promise<string> {
  const instance = await fleet.client().get<InstanceView>(`/api/v1/instances/${instanceId}`).catch(() => undefined);
  if (!instance) return 'gone from the API';
  let cpu = 'no pid';
  if (instance.pid) {
    try {
      const fields = readFileSync(`/proc/${instance.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      cpu = `QEMU pid ${instance.pid} state ${fields[0]} cpu ${(Number(fields[11]) + Number(fields[12])) / 100} s`;
    } catch {
      cpu = `QEMU pid ${instance.pid} gone`;
    }
  }
  const probe = instance.url
    ? await fetch(`${instance.url}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => `HTTP ${r.status}`, (e: unknown) => (e as Error).name)
    : 'no url';
  return `status ${instance.status}, healthy ${instance.healthy}, published ${instance.published}, message ${instance.message ?? '-'}; ${cpu}; direct /healthz: ${probe}`;
}

interface Move {
  n: number;
  migration_id: string;
  from: string | null;
  to: string | null;
  state: string;
  reason: string | null;
  total_ms: number | null;
  downtime_ms: number | null;
  transferred_bytes: number | null;
  /** The target 5 s after the transfer when it had not taken over by then. */
  stuck_target?: string | undefined;
  /** POST migrate → the API showing the move ended. */
  end_to_end_ms: number;
  prepare_ms?: number | undefined;
  transfer_ms?: number | undefined;
  switch_ms?: number | undefined;
  boot_id_same: boolean | null;
}

let ok = false;
let result: (Record<string, unknown> & { goals_met: Record<string, boolean> }) | undefined;
try {
  await fleet.startOperator(`127.0.0.1:${await freePort()}`, databaseUrl ? ['--database-url', databaseUrl] : []);
  const client = fleet.client();
  const keys = generateSigningKeyPair();
  const keyFile = join(fleet.dir, 'signing.pub');
  writeFileSync(keyFile, keys.publicPem);
  const agentArgs = ['--heartbeat-interval', '1s', '--trusted-key', keyFile, '--vm-accel', 'tcg'];
  // Three slots each: room for the incoming guest of a move, and for the drain phase's arrivals.
  for (const name of ['vm-a', 'vm-b', 'vm-c']) fleet.startAgent(name, 'us-east', ['--max-instances', '3', ...agentArgs]);
  await fleet.waitForNodes(3);

  const imageRef = await publishVmImage(fleet.operatorUrl, image, keys);
  const workload = { driver: 'vm', image: imageRef, memory_mb: memoryMb, vcpus: 1, guest_port: image.imageJson.guest_port };
  const bootStarted = performance.now();
  const deployment = await client.post<DeploymentView>('/api/v1/deployments', { name: DEPLOYMENT, replicas: 2, min_available: 1, workload });
  const serving = await waitFor(
    'two VMs serving',
    async () => {
      await fleet.recordInstancePids();
      const instances = await client.get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`);
      const up = instances.filter((i) => i.published && i.healthy);
      return up.length === 2 ? up : undefined;
    },
    180_000,
    500,
  );
  await fleet.recordInstancePids();
  console.log(`2 VMs (${memoryMb} MiB, TCG) serving on ${serving.map((i) => i.hostname).join(', ')} after ${t(performance.now() - bootStarted)}`);
  const edge = await fleet.startEdge(`127.0.0.1:${await freePort()}`);
  await waitFor('the edge to route the deployment', async () => ((await fetch(`${edge}/d/${DEPLOYMENT}/status`)).ok ? true : undefined), 30_000);

  const first = [...serving].sort((a, b) => a.hostname.localeCompare(b.hostname))[0] as InstanceView;
  const before = await instanceGuestStatus(client, first.id);
  const samplers = new Map<string, ProcessSampler>();
  for (const [procName, proc] of fleet.processes) samplers.set(procName, new ProcessSampler(proc.pid));
  for (const sampler of samplers.values()) sampler.start();
  const lastEvent = (await client.get<EventRow[]>('/api/v1/events?order=desc&limit=1'))[0]?.id ?? 0;
  const retriesBefore = await edgeRetries(edge, DEPLOYMENT);
  const traffic = trafficThroughEdge(edge, DEPLOYMENT, clientEveryMs);
  await new Promise((r) => setTimeout(r, 1000));

  const moves: Move[] = [];
  let guestLostAt: number | null = null;
  let current = first.id;
  const phaseStarted = performance.now();
  for (let n = 1; n <= count && !interrupted; n++) {
    const t0 = performance.now();
    // A 409 right after the previous move (its source still winding down) is retried briefly.
    const reply = await waitFor(
      `POST migrate of ${current} to be accepted`,
      async () => {
        try {
          return await client.post<{ migration_id: string; replacement_id: string }>(`/api/v1/instances/${current}/migrate`, {
            downtime_limit_ms: downtimeLimitMs,
            deadline: Math.ceil(moveDeadlineMs / 1000),
          });
        } catch (error) {
          if (error instanceof ApiCallError && error.status === 409) return undefined;
          throw error;
        }
      },
      15_000,
      100,
    );
    let row: MigrationView;
    // A move whose target has not taken over 5 s after the transfer: what its target looked like.
    let switchingSince: number | undefined;
    let stuck: string | undefined;
    try {
      row = await waitFor(
        `migration ${reply.migration_id} to end`,
        async () => {
          const m = await client.get<MigrationView>(`/api/v1/migrations/${reply.migration_id}`);
          if (m.state === 'switching') switchingSince ??= performance.now();
          if (switchingSince !== undefined && stuck === undefined && performance.now() - switchingSince > 5000) stuck = await describeTarget(m.target_instance_id);
          return m.state === 'completed' || m.state === 'failed' || m.state === 'cancelled' ? m : undefined;
        },
        moveDeadlineMs + 30_000,
        50,
      );
    } catch (error) {
      throw new Error(`move ${n} did not end, not even by its deadline: ${(error as Error).message}`);
    }
    const endToEndMs = performance.now() - t0;
    await fleet.recordInstancePids();
    let bootIdSame: boolean | null = null;
    if (row.state === 'completed') {
      const after = await instanceGuestStatus(client, row.target_instance_id).catch(() => undefined);
      bootIdSame = after?.boot_id === before.boot_id;
      // The source's QEMU quit at switchover; wait for its row to say so before the next move,
      // so moves do not overlap (bounded: a slow report only delays the next move).
      const source = current;
      await waitFor(
        'the source to be stopped',
        async () => {
          const instance = await client.get<InstanceView>(`/api/v1/instances/${source}`).catch((e: unknown) => (e instanceof ApiCallError && e.status === 404 ? null : Promise.reject(e)));
          return instance === null || instance.status === 'stopped' ? true : undefined;
        },
        15_000,
        100,
      ).catch(() => undefined);
      current = row.target_instance_id;
    }
    const move: Move = {
      n,
      migration_id: row.id,
      from: row.source_hostname,
      to: row.target_hostname,
      state: row.state,
      reason: row.reason,
      total_ms: row.total_ms,
      downtime_ms: row.downtime_ms,
      transferred_bytes: row.transferred_bytes,
      end_to_end_ms: Math.round(endToEndMs),
      boot_id_same: bootIdSame,
      ...(stuck ? { stuck_target: stuck } : {}),
    };
    moves.push(move);
    console.log(
      `move ${String(n).padStart(2)}/${count} ${move.from} → ${move.to}: ${move.state}` +
        (move.state === 'completed' ? `, total ${move.total_ms} ms, downtime ${move.downtime_ms} ms, ${((move.transferred_bytes ?? 0) / 1e6).toFixed(1)} MB` : ` (${move.reason})`) +
        `, end to end ${t(endToEndMs)}, boot id ${bootIdSame === null ? 'n/a' : bootIdSame ? 'same' : 'CHANGED'}, client failed so far ${traffic.stats.failed}/${traffic.stats.sent}`,
    );
    if (stuck) console.log(`    target 5 s after the transfer: ${stuck}`);
    if (row.state !== 'completed') {
      // A move that failed before the transfer leaves the guest where it was; one that failed
      // after it may have lost the guest (its source QEMU quit): then there is nothing to move.
      const still = await instanceGuestStatus(client, current).catch(() => undefined);
      if (still?.boot_id !== before.boot_id) {
        guestLostAt = n;
        console.log(`    the guest no longer answers at ${current} (${still ? `boot id ${still.boot_id}` : 'no answer'}): lost with move ${n}; stopping the moves`);
        break;
      }
    }
  }
  await new Promise((r) => setTimeout(r, 500)); // some traffic after the last switchover too
  const phaseMs = performance.now() - phaseStarted;
  const stats = await traffic.stop();
  const retries = (await edgeRetries(edge, DEPLOYMENT)) - retriesBefore;
  const cpu: Record<string, { cpu_percent: number; rss_max_mb: number }> = {};
  for (const [procName, sampler] of samplers) cpu[procName] = sampler.stop();
  const final = await instanceGuestStatus(client, current).catch(() => undefined);

  const phases = await movePhases(client, moves.map((m) => m.migration_id), lastEvent);
  for (const move of moves) Object.assign(move, phases.get(move.migration_id));

  const completed = moves.filter((m) => m.state === 'completed');
  const failures = moves.length - completed.length;
  const dist = (xs: (number | null | undefined)[]) => ({ p50: percentile(xs, 0.5), p99: percentile(xs, 0.99), max: percentile(xs, 1) });
  const downtime = dist(completed.map((m) => m.downtime_ms));
  const total = dist(completed.map((m) => m.total_ms));
  const bootIdPreserved = final?.boot_id === before.boot_id && completed.every((m) => m.boot_id_same === true);
  const requestsRose = final !== undefined && final.requests > before.requests;

  console.log('');
  console.log(`${moves.length} live migrations of a ${memoryMb} MiB guest (TCG, downtime limit ${downtimeLimitMs} ms) in ${t(phaseMs)}:`);
  console.log(`  completed ${completed.length} of ${count} asked, failed ${failures}${failures ? ` (${moves.filter((m) => m.state !== 'completed').map((m) => m.reason).join('; ')})` : ''}`);
  console.log(`  downtime   p50 ${downtime.p50} ms, p99 ${downtime.p99} ms, max ${downtime.max} ms`);
  console.log(`  total      p50 ${total.p50} ms, p99 ${total.p99} ms, max ${total.max} ms`);
  console.log(`  transferred p50 ${(percentile(completed.map((m) => m.transferred_bytes), 0.5) / 1e6).toFixed(1)} MB`);
  console.log(`  end to end (POST migrate → completed in the API) p50 ${t(percentile(moves.map((m) => m.end_to_end_ms), 0.5))}, max ${t(percentile(moves.map((m) => m.end_to_end_ms), 1))}`);
  console.log(
    `    of which p50: start → target listening ${percentile(moves.map((m) => m.prepare_ms), 0.5)} ms, → transferred (source quit) ${percentile(moves.map((m) => m.transfer_ms), 0.5)} ms, → target published ${percentile(moves.map((m) => m.switch_ms), 0.5)} ms`,
  );
  console.log(`  client through the edge every ${clientEveryMs} ms: failed ${stats.failed} of ${stats.sent}; latency ${JSON.stringify(latencySummary(stats.latency))} ms; edge retries ${retries}`);
  for (const f of stats.failures.slice(0, 5)) console.log(`    failed at +${f.at_ms} ms: ${f.error}`);
  console.log(
    `  boot id preserved: ${bootIdPreserved} (${before.boot_id} → ${final?.boot_id ?? 'no guest answering'}); guest requests ${before.requests} → ${final?.requests ?? '-'}${requestsRose ? '' : ' (did NOT rise)'}` +
      (guestLostAt === null ? '' : `; the guest was LOST with move ${guestLostAt}`),
  );
  console.log(`  CPU over the phase (own process, not QEMU): ${Object.entries(cpu).map(([k, v]) => `${k} ${v.cpu_percent}%`).join(', ')}`);
  console.log('goals:');
  console.log(`  downtime p50 ≤ ${GOALS.downtimeP50Ms} ms: ${met(downtime.p50 <= GOALS.downtimeP50Ms)} (${downtime.p50} ms)`);
  console.log(`  downtime p99 ≤ ${GOALS.downtimeP99Ms} ms: ${met(downtime.p99 <= GOALS.downtimeP99Ms)} (${downtime.p99} ms)`);
  console.log(`  total p50 ≤ ${GOALS.totalP50Ms} ms: ${met(total.p50 <= GOALS.totalP50Ms)} (${total.p50} ms)`);
  console.log(`  client failed = ${GOALS.clientFailed}: ${met(stats.failed === GOALS.clientFailed)} (${stats.failed}/${stats.sent})`);
  console.log(`  no failed migration: ${met(failures === 0)}; boot id preserved: ${met(bootIdPreserved && requestsRose)}`);

  result = {
    at: new Date().toISOString(),
    engine: databaseUrl ? 'postgres' : 'pglite',
    accel: 'tcg',
    memory_mb: memoryMb,
    downtime_limit_ms: downtimeLimitMs,
    count: moves.length,
    completed: completed.length,
    failures,
    downtime_ms: downtime,
    total_ms: total,
    transferred_bytes_p50: percentile(completed.map((m) => m.transferred_bytes), 0.5),
    end_to_end_ms_p50: percentile(moves.map((m) => m.end_to_end_ms), 0.5),
    end_to_end_breakdown_ms_p50: {
      prepare: percentile(moves.map((m) => m.prepare_ms), 0.5),
      transfer: percentile(moves.map((m) => m.transfer_ms), 0.5),
      switch: percentile(moves.map((m) => m.switch_ms), 0.5),
    },
    client_sent: stats.sent,
    client_failed: stats.failed,
    client_failures: stats.failures,
    client_latency_ms: latencySummary(stats.latency),
    edge_retries: retries,
    boot_id_preserved: bootIdPreserved,
    guest_requests: { before: before.requests, after: final?.requests ?? null },
    guest_lost_at_move: guestLostAt,
    cpu,
    moves,
    goals_met: {
      downtime_p50: downtime.p50 <= GOALS.downtimeP50Ms,
      downtime_p99: downtime.p99 <= GOALS.downtimeP99Ms,
      total_p50: total.p50 <= GOALS.totalP50Ms,
      client_failed: stats.failed === GOALS.clientFailed,
    },
  };
  let drainOk = true;
  if (!values['skip-drain'] && !interrupted) {
    console.log('');
    let drain: VmDrainResult;
    try {
      drain = await measureVmDrain({ fleet, edge, workload, agentArgs, vms: drainVms, timeoutMs: drainTimeoutMs, clientEveryMs, log: (line) => console.log(line) });
    } catch (error) {
      console.log(`drain phase failed: ${(error as Error).message}`);
      result.drain = { error: (error as Error).message };
      throw error;
    }
    const drainMet = drain.state === 'completed' && drain.drain_ms < GOALS.drainMs;
    drainOk = drain.state === 'completed';
    result.drain = drain;
    result.goals_met.drain = drainMet;
    result.goals_met.drain_client_failed = drain.client_failed === GOALS.clientFailed;
    console.log(`drain of a node hosting ${drain.vms} VMs: ${drain.state} in ${t(drain.drain_ms)}; every move ended (API) at ${t(drain.moves_ended_ms)}, the last completed at ${t(drain.last_move_completed_ms)} by its row`);
    if (drain.last_move_completed_ms > drain.drain_ms) {
      console.log(`  NOTE: the drain said completed ${t(drain.last_move_completed_ms - drain.drain_ms)} before its last move did (a target not yet published)`);
    }
    for (const m of drain.moves) {
      console.log(
        `  → ${m.hostname_to}: ${m.state}, total ${m.total_ms} ms, downtime ${m.downtime_ms} ms, start → completed ${m.end_to_end_ms} ms` +
          ` (target listening ${m.prepare_ms} ms, transferred +${m.transfer_ms} ms, published +${m.switch_ms} ms)${m.reason ? ` (${m.reason})` : ''}`,
      );
    }
    console.log(
      `  client failed ${drain.client_failed} of ${drain.client_sent}` +
        (drain.client_failed > 0 ? ` (from ${t(drain.client_failures_from_ms ?? 0)} to ${t(drain.client_failures_until_ms ?? 0)} after the drain request)` : '') +
        `; latency ${JSON.stringify(drain.client_latency_ms)} ms; edge retries ${drain.edge_retries}; boot ids preserved: ${drain.boot_ids_preserved}`,
    );
    for (const f of drain.client_failures.slice(0, 5)) console.log(`    failed at +${f.at_ms} ms: ${f.error}`);
    console.log(`  goal drain < ${GOALS.drainMs / 1000} s: ${met(drainMet)} (${t(drain.drain_ms)})`);
    console.log(`  client failed = ${GOALS.clientFailed} during the drain: ${met(drain.client_failed === GOALS.clientFailed)} (${drain.client_failed}/${drain.client_sent})`);
  }
  ok = !interrupted && failures === 0 && drainOk;
} finally {
  const alive = await cleanup(ok);
  if (result) {
    result.processes_left_alive = alive.length;
    appendRun(resolve(root, values.out), result);
  }
  console.log(alive.length === 0 ? 'cleanup: every process and QEMU this run started is gone' : `cleanup: ${alive.length} process(es) were still alive after stopping the fleet (killed by pid): ${alive.join(', ')}`);
  if (alive.length > 0) process.exitCode = 1;
}
