// Heartbeats over HTTP into one real operator process: registers N nodes through the agent
// gateway, then has every node heartbeat every --interval for --duration while a probe reads
// the API (a node, the node list of one region, /health), and --longpolls nodes hold the agent's
// long-poll open while, twice a second, one of them is drained or enabled through the API: the
// time from that write to the node's long-poll returning is the reaction (issue 9 goal 4).
// Reports achieved rate, latency percentiles, reaction, errors, and the operator's CPU and RSS;
// writes bench/results/heartbeats-http.json.
//
//   npm run bench:heartbeats-http -- --nodes 10000 [--interval 2s] [--duration 60s] [--longpolls 100]
//                                    [--instances 0] [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--profile DIR]
//
// With --instances N the operator places N instances per node (deployments of up to 100
// replicas) before the measured phase, and every heartbeat reports the instances its last
// reply asked for, as an agent does: running and healthy, or stopped once asked to stop.
//
// With --postgres a fresh database is created on that server (and dropped afterwards); without
// it the operator runs on the embedded engine in a temp dir. The generator runs in this process
// with keep-alive sockets; on 2 cores it competes with the operator and Postgres for CPU, so the
// numbers are a lower bound of what the operator alone would do.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { parseDuration } from '../src/domain/duration.js';
import { freePort } from '../src/agent/drivers/process-driver.js';
import { bucketQuantiles, CREDENTIAL_HEADER, inParallel, Latencies, ProcessSampler, postJson, getJson, operatorReading, waitForResync } from './http-load.js';
import { appendRun } from './results.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '2s' },
    duration: { type: 'string', default: '60s' },
    regions: { type: 'string', default: '3' },
    sockets: { type: 'string', default: '64' },
    longpolls: { type: 'string', default: '100' },
    /** Instances per node (deployments of up to 100 replicas placed by the operator), reported running by every heartbeat. */
    instances: { type: 'string', default: '0' },
    postgres: { type: 'string' },
    /** Write the operator's CPU profile (its main thread, where HTTP is served) into this directory. */
    profile: { type: 'string' },
    out: { type: 'string', default: 'bench/results/heartbeats-http.json' },
  },
});
const nodes = Number(values.nodes);
const intervalMs = parseDuration(values.interval) ?? 2000;
const durationMs = parseDuration(values.duration) ?? 60_000;
const regions = Number(values.regions);
const bundle = resolve('dist/drydock.mjs');

const dir = mkdtempSync(join(tmpdir(), 'drydock-bench-http-'));
const agentToken = randomBytes(24).toString('hex');
const viewerToken = randomBytes(24).toString('hex');
const operatorToken = randomBytes(24).toString('hex');
writeFileSync(
  join(dir, 'tokens.yaml'),
  `tokens:\n  - { name: agents, token: "${agentToken}", role: agent }\n  - { name: probe, token: "${viewerToken}", role: viewer }\n  - { name: changer, token: "${operatorToken}", role: operator }\n`,
);

let databaseUrl: string | undefined;
let dbName: string | undefined;
if (values.postgres) {
  dbName = `drydock_bench_${process.pid}`;
  const admin = new pg.Client({ connectionString: values.postgres });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
  const url = new URL(values.postgres);
  url.pathname = `/${dbName}`;
  databaseUrl = url.toString();
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const operatorArgs = ['operator', '--listen', `127.0.0.1:${port}`, '--tokens', join(dir, 'tokens.yaml'), '--heartbeat-interval', values.interval, '--heartbeat-grace', '10s'];
if (databaseUrl) operatorArgs.push('--database-url', databaseUrl);
else operatorArgs.push('--data-dir', join(dir, 'data'));
const nodeArgs = values.profile ? ['--cpu-prof', '--cpu-prof-dir', resolve(values.profile)] : [];
const operator: ChildProcess = spawn(process.execPath, [...nodeArgs, bundle, ...operatorArgs], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DRYDOCK_LOG_FORMAT: 'json' } });
let operatorStderr = '';
operator.stderr?.on('data', (chunk: Buffer) => {
  operatorStderr = (operatorStderr + chunk.toString()).slice(-4000);
});

const agent = new http.Agent({ keepAlive: true, maxSockets: Number(values.sockets) });
const agentAuth = { authorization: `Bearer ${agentToken}` };
const viewerAuth = { authorization: `Bearer ${viewerToken}` };
const operatorAuth = { authorization: `Bearer ${operatorToken}` };
// Long-polls stay open up to 30 s: their own sockets, so heartbeats never queue behind them.
const pollAgent = new http.Agent({ keepAlive: true, maxSockets: Number(values.longpolls) + 8 });

async function cleanup() {
  operator.kill('SIGTERM');
  // A profile is written when the process exits by itself: give it the time to.
  const graceMs = values.profile ? 15_000 : 500;
  for (let waited = 0; operator.exitCode === null && operator.signalCode === null && waited < graceMs; waited += 100) await new Promise((r) => setTimeout(r, 100));
  if (operator.exitCode === null && operator.signalCode === null) operator.kill('SIGKILL');
  agent.destroy();
  pollAgent.destroy();
  rmSync(dir, { recursive: true, force: true });
  if (values.postgres && dbName) {
    const admin = new pg.Client({ connectionString: values.postgres });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}

try {
  const readyBy = Date.now() + 60_000;
  for (;;) {
    const health = await getJson(agent, `${base}/health`, {}).catch(() => undefined);
    if (health?.status === 200) break;
    if (Date.now() > readyBy || operator.exitCode !== null) throw new Error(`operator did not start: ${operatorStderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  // Register every node (bounded concurrency), as agents do at start.
  const registered: { id: string; credential: string; region: string }[] = [];
  const registerStarted = performance.now();
  await inParallel(nodes, 32, async (n) => {
    const region = `region-${n % regions}`;
    const reply = await postJson(agent, `${base}/api/v1/agent/register`, agentAuth, {
      hostname: `bench-node-${n}`, region, role: 'worker', max_instances: 20, agent_version: '1.0.0', protocol_version: 1,
    });
    if (reply.status !== 200) throw new Error(`register answered ${reply.status}: ${reply.text}`);
    const body = JSON.parse(reply.text) as { node_id: string; node_credential: string };
    registered.push({ id: body.node_id, credential: body.node_credential, region });
  });
  const registerSeconds = (performance.now() - registerStarted) / 1000;
  console.log(`registered ${nodes} nodes in ${registerSeconds.toFixed(1)} s`);

  // What each node's last reply asked it to run; its heartbeats report exactly that.
  const desired = new Map<string, { id: string; desired: 'running' | 'stopped' }[]>();
  const heartbeatBody = (node: (typeof registered)[number], generation: number) => ({
    node_id: node.id, agent_version: '1.0.0', protocol_version: 1, components: { 'node-agent': '1.0.0' }, generation,
    instances: (desired.get(node.id) ?? []).map((d, k) =>
      d.desired === 'running' ? { id: d.id, status: 'running', healthy: true, pid: 1000 + k, port: 20_000 + k } : { id: d.id, status: 'stopped', healthy: false, pid: null, port: null },
    ),
  });
  const remember = (node: (typeof registered)[number], text: string) => {
    const reply = JSON.parse(text) as { generation: number; instances?: { id: string; desired: 'running' | 'stopped' }[] };
    desired.set(node.id, (reply.instances ?? []).map((i) => ({ id: i.id, desired: i.desired })));
    return reply.generation;
  };
  /** One heartbeat of every node, 32 at a time. */
  const round = () =>
    inParallel(registered.length, 32, async (k) => {
      const node = registered[k] as (typeof registered)[number];
      const reply = await postJson(agent, `${base}/api/v1/agent/heartbeat`, { ...agentAuth, [CREDENTIAL_HEADER]: node.credential }, heartbeatBody(node, 0));
      if (reply.status === 200) remember(node, reply.text);
    });
  // Registering 10,000 nodes takes longer than the heartbeat grace, so the first ones would go
  // down before the measured phase starts: one warm-up heartbeat of every node brings all of
  // them up, and only node.down events after it count.
  const warmupStarted = performance.now();
  await round();
  console.log(`warm-up heartbeat of every node in ${((performance.now() - warmupStarted) / 1000).toFixed(1)} s`);
  const perNode = Number(values.instances);
  if (perNode > 0) {
    const placeStarted = performance.now();
    const total = nodes * perNode;
    const deployments = Math.ceil(total / 100);
    await inParallel(deployments, 4, async (n) => {
      const replicas = Math.min(100, total - n * 100);
      const reply = await postJson(agent, `${base}/api/v1/deployments`, operatorAuth, { name: `bench-${n}`, replicas, workload: { command: 'sleep' } });
      if (reply.status !== 201) throw new Error(`creating deployment bench-${n} answered ${reply.status}: ${reply.text}`);
    });
    // Rounds until every instance is placed and reported healthy: a round learns what to run
    // from its replies, the next reports it running. The measured phase starts from that steady state.
    let healthy = 0;
    for (let rounds = 0; healthy < total; rounds++) {
      await round();
      const list = JSON.parse((await getJson(agent, `${base}/api/v1/deployments`, viewerAuth)).text) as { name: string; replicas: number; healthy_instances: number }[];
      if (rounds === 19) {
        const short = list.filter((dep) => dep.healthy_instances < dep.replicas);
        const first = short[0] as (typeof short)[number];
        const rows = JSON.parse((await getJson(agent, `${base}/api/v1/instances?deployment=${first.name}`, viewerAuth)).text) as { status: string }[];
        const statuses = JSON.stringify(Object.fromEntries([...new Set(rows.map((r) => r.status))].map((st) => [st, rows.filter((r) => r.status === st).length])));
        throw new Error(
          `not every instance healthy after 20 rounds of heartbeats: ${short.slice(0, 10).map((dep) => `${dep.name} ${dep.healthy_instances}/${dep.replicas}`).join(', ')}${short.length > 10 ? ', …' : ''}; ` +
            `${first.name} has ${rows.length} instance rows ${statuses}`,
        );
      }
      healthy = list.reduce((sum, dep) => sum + dep.healthy_instances, 0);
    }
    await waitForResync(agent, base, deployments);
    console.log(`placed ${total} instances (${deployments} deployments), all reported healthy in ${((performance.now() - placeStarted) / 1000).toFixed(1)} s`);
  }
  const lastEvent = await getJson(agent, `${base}/api/v1/events?order=desc&limit=1`, viewerAuth);
  const measuredAfter = (JSON.parse(lastEvent.text) as { id: number }[])[0]?.id ?? 0;

  const heartbeatLatency = new Latencies();
  const apiLatency = new Latencies();
  const errors: Record<string, number> = {};
  const generations = new Map<string, number>();
  const sampler = new ProcessSampler(operator.pid as number);
  const started = performance.now();
  const stopAt = started + durationMs;
  let sent = 0;

  // Each node heartbeats every interval, the fleet spread evenly over the interval.
  const heartbeat = async (node: (typeof registered)[number]) => {
    const t0 = performance.now();
    sent++;
    try {
      const reply = await postJson(agent, `${base}/api/v1/agent/heartbeat`, { ...agentAuth, [CREDENTIAL_HEADER]: node.credential }, heartbeatBody(node, generations.get(node.id) ?? 0));
      heartbeatLatency.add(performance.now() - t0);
      if (reply.status !== 200) errors[String(reply.status)] = (errors[String(reply.status)] ?? 0) + 1;
      else generations.set(node.id, remember(node, reply.text));
    } catch (error) {
      heartbeatLatency.add(performance.now() - t0);
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      errors[code] = (errors[code] ?? 0) + 1;
    }
  };
  const schedule = registered.map((node, i) => {
    const offset = (i / registered.length) * intervalMs;
    return (async () => {
      let at = started + offset;
      while (at < stopAt) {
        const wait = at - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        await heartbeat(node);
        at += intervalMs;
      }
    })();
  });
  // The other API meanwhile: one read every 100 ms, rotating through three kinds.
  const probe = (async () => {
    let k = 0;
    while (performance.now() < stopAt) {
      const node = registered[k % registered.length] as (typeof registered)[number];
      const path = [`/api/v1/nodes/${node.id}`, `/api/v1/nodes?region=${node.region}&status=down`, '/health'][k % 3] as string;
      const t0 = performance.now();
      const reply = await getJson(agent, `${base}${path}`, viewerAuth).catch(() => undefined);
      apiLatency.add(performance.now() - t0);
      if (reply?.status !== 200) errors[`api_${reply?.status ?? 'error'}`] = (errors[`api_${reply?.status ?? 'error'}`] ?? 0) + 1;
      k++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  // Reaction: long-polls (20 s, under the client's 30 s timeout) of the first --longpolls nodes;
  // one of them drained or enabled every 500 ms.
  const reaction = new Latencies();
  const watched = registered.slice(0, Math.min(Number(values.longpolls), registered.length));
  const changedAt = new Map<string, number>();
  const polls = watched.map(async (node) => {
    let after = generations.get(node.id) ?? 0;
    while (performance.now() < stopAt) {
      const reply = await getJson(pollAgent, `${base}/api/v1/agent/desired?node_id=${node.id}&after=${after}&wait=20`, { ...agentAuth, [CREDENTIAL_HEADER]: node.credential }).catch(
        () => undefined,
      );
      const at = performance.now();
      if (reply?.status !== 200) {
        errors[`longpoll_${reply?.status ?? 'error'}`] = (errors[`longpoll_${reply?.status ?? 'error'}`] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      const generation = (JSON.parse(reply.text) as { generation: number }).generation;
      const since = changedAt.get(node.id);
      if (generation > after && since !== undefined) {
        reaction.add(at - since);
        changedAt.delete(node.id);
      }
      after = Math.max(after, generation);
    }
  });
  const changer = (async () => {
    const drained = new Set<string>();
    let k = 0;
    while (watched.length > 0 && performance.now() < stopAt - 1000) {
      const node = watched[k++ % watched.length] as (typeof watched)[number];
      const action = drained.has(node.id) ? 'enable' : 'drain';
      if (!changedAt.has(node.id)) {
        changedAt.set(node.id, performance.now());
        const reply = await postJson(agent, `${base}/api/v1/nodes/${node.id}/${action}`, operatorAuth, {}).catch(() => undefined);
        if (reply?.status === 200 || reply?.status === 202) {
          if (action === 'drain') drained.add(node.id);
          else drained.delete(node.id);
        } else {
          changedAt.delete(node.id);
          errors[`change_${reply?.status ?? 'error'}`] = (errors[`change_${reply?.status ?? 'error'}`] ?? 0) + 1;
        }
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  const HEARTBEAT_ROUTE = '/api/v1/agent/heartbeat';
  const insideBefore = (await operatorReading(agent, base, HEARTBEAT_ROUTE)).buckets;
  // This load generator's own event loop: a reply it reads late counts in its latencies too.
  const clientLoop = monitorEventLoopDelay({ resolution: 10 });
  clientLoop.enable();
  sampler.start();
  await Promise.all([...schedule, probe, changer]);
  const elapsed = (performance.now() - started) / 1000;
  const usage = sampler.stop();
  clientLoop.disable();
  const clientLoopDelayMs = { p99: Math.round(clientLoop.percentile(99) / 1e6), max: Math.round(clientLoop.max / 1e6) };
  // The same heartbeats as the operator timed them (arrival to reply): what is left of the
  // client's latency is the client, the kernel and the cores the processes share.
  const reading = await operatorReading(agent, base, HEARTBEAT_ROUTE);
  const inside = { ...bucketQuantiles(insideBefore, reading.buckets), event_loop_delay_ms: reading.loopDelayMs };
  // Long-polls end by themselves within their wait once the run is over.
  await Promise.all(polls);
  const down = await getJson(agent, `${base}/api/v1/events?kind_prefix=node.down&limit=5000&after=${measuredAfter}`, viewerAuth);
  const falseDowns = down.status === 200 ? (JSON.parse(down.text) as unknown[]).length : -1;

  const result = {
    at: new Date().toISOString(),
    engine: databaseUrl ? 'postgres' : 'pglite',
    nodes,
    instances_per_node: perNode,
    interval_ms: intervalMs,
    duration_s: Math.round(elapsed),
    target_per_s: Math.round(nodes / (intervalMs / 1000)),
    achieved_per_s: Math.round(heartbeatLatency.count / elapsed),
    sent,
    errors,
    heartbeat_ms: heartbeatLatency.summary(),
    api_ms: apiLatency.summary(),
    // From a drain/enable request being sent to the node's long-poll returning with the new generation.
    reaction_ms: reaction.summary(),
    // Upper bounds from the operator's own histogram (drydock_http_request_duration_seconds).
    heartbeat_inside_operator: inside,
    client_event_loop_delay_ms: clientLoopDelayMs,
    longpolls: watched.length,
    operator: usage,
    // node.down events during the measured phase (after the warm-up); at most 5,000 are counted.
    node_down_events: falseDowns,
    register_s: Number(registerSeconds.toFixed(1)),
  };
  const h = result.heartbeat_ms;
  const a = result.api_ms;
  console.log(
    `${result.engine} ${nodes} nodes${perNode > 0 ? ` (${perNode} instances each)` : ''} every ${intervalMs} ms for ${result.duration_s} s: ${result.achieved_per_s}/s of ${result.target_per_s}/s target, ` +
      `errors ${JSON.stringify(errors)}\n  heartbeat p50 ${h.p50} ms  p95 ${h.p95}  p99 ${h.p99}  max ${h.max}\n  the same inside the operator (its histogram's bucket bounds): p50 ≤ ${inside.le_ms.p50} ms  p95 ≤ ${inside.le_ms.p95}  p99 ≤ ${inside.le_ms.p99}; its event loop delay p99 ${inside.event_loop_delay_ms.p99} ms, max ${inside.event_loop_delay_ms.max}; the load generator's own p99 ${clientLoopDelayMs.p99} ms, max ${clientLoopDelayMs.max}\n  other API p50 ${a.p50} ms  p95 ${a.p95}  p99 ${a.p99}  max ${a.max}\n` +
      `  reaction (API write → long-poll returns, ${watched.length} long-polls, ${result.reaction_ms.count} changes) p50 ${result.reaction_ms.p50} ms  p99 ${result.reaction_ms.p99}  max ${result.reaction_ms.max}\n` +
      `  operator CPU ${usage.cpu_percent}% (of one core), RSS max ${usage.rss_max_mb} MiB; node.down events: ${falseDowns}`,
  );
  appendRun(values.out, result);
} finally {
  await cleanup();
}
