// Dashboard page loads with a 1,000-node fleet (issue 13: "a page load under 1 s with 1,000
// nodes"). Starts a real operator (dist/drydock.mjs) on the embedded database, registers --nodes
// nodes through the agent gateway and heartbeats each once with its components, creates a
// deployment so some nodes run instances, then opens each main page of /ui in Debian's Chromium
// (playwright-core) --loads times. Each load is a fresh navigation (about:blank → the page), the
// browser's cache kept as a person's would be; time-to-content is the page's own clock
// (performance.now() is 0 at navigation start) when the page shows its data. Also prints the
// API calls each page made (bytes on the wire, decoded bytes, time) from Resource Timing.
// Writes bench/results/ui-page-load.json.
//
//   npm run bench:ui-page-load -- [--nodes 1000] [--loads 7] [--chromium /usr/bin/chromium]
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { freePort } from '../src/agent/drivers/process-driver.js';
import { CREDENTIAL_HEADER, getJson, inParallel, postJson } from './http-load.js';
import { appendRun } from './results.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '1000' },
    loads: { type: 'string', default: '7' },
    chromium: { type: 'string', default: process.env.DRYDOCK_CHROMIUM ?? '/usr/bin/chromium' },
    out: { type: 'string', default: 'bench/results/ui-page-load.json' },
  },
});
const nodes = Number(values.nodes);
const loads = Number(values.loads);
const REGIONS = ['us-east', 'us-west', 'eu-west', 'eu-central', 'ap-south'];
const bundle = resolve('dist/drydock.mjs');

const dir = mkdtempSync(join(tmpdir(), 'drydock-bench-ui-'));
const agentToken = randomBytes(24).toString('hex');
const viewerToken = randomBytes(24).toString('hex');
const operatorToken = randomBytes(24).toString('hex');
writeFileSync(
  join(dir, 'tokens.yaml'),
  `tokens:\n  - { name: agents, token: "${agentToken}", role: agent }\n  - { name: vera, token: "${viewerToken}", role: viewer }\n  - { name: olga, token: "${operatorToken}", role: operator }\n`,
);

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const operator: ChildProcess = spawn(
  process.execPath,
  [bundle, 'operator', '--listen', `127.0.0.1:${port}`, '--tokens', join(dir, 'tokens.yaml'), '--data-dir', join(dir, 'data'), '--heartbeat-grace', '1h'],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, DRYDOCK_LOG_FORMAT: 'json' } },
);
let operatorStderr = '';
operator.stderr?.on('data', (chunk: Buffer) => {
  operatorStderr = (operatorStderr + chunk.toString()).slice(-4000);
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const agentAuth = { authorization: `Bearer ${agentToken}` };
const operatorAuth = { authorization: `Bearer ${operatorToken}` };

/** One main page: where it is and when it shows its data. */
interface PageCase {
  name: string;
  hash: string;
  /** When the page counts as shown: `fleet` (the summary and node rows) or `loaded` (see isShown). */
  ready: 'fleet' | 'loaded';
}

/**
 * Runs in the page (a function, not a string: the dashboard's CSP forbids eval): the time since
 * navigation start once the content is on screen, else false. A page shows its data once its <h1>
 * is there and no "Loading…" is left in <main>; the fleet page once its summary and node rows are.
 */
function isShown(kind: 'fleet' | 'loaded'): number | false {
  const main = document.querySelector('main');
  const shown =
    kind === 'fleet'
      ? document.querySelector('[data-testid=fleet-summary]') !== null && document.querySelector('tr[data-node]') !== null
      : !!main && !!main.querySelector('h1') && !(main.textContent ?? '').includes('Loading…');
  return shown ? performance.now() : false;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

async function cleanup(): Promise<void> {
  operator.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  if (operator.exitCode === null) operator.kill('SIGKILL');
  agent.destroy();
  rmSync(dir, { recursive: true, force: true });
}

try {
  const readyBy = Date.now() + 60_000;
  for (;;) {
    const health = await getJson(agent, `${base}/health`, {}).catch(() => undefined);
    if (health?.status === 200) break;
    if (Date.now() > readyBy || operator.exitCode !== null) throw new Error(`operator did not start: ${operatorStderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  // Register and heartbeat every node (as agents do at start), with components: a third on node-agent 2.0.0.
  const setupStarted = performance.now();
  const registered: { id: string; hostname: string }[] = [];
  await inParallel(nodes, 16, async (n) => {
    const hostname = `node-${String(n).padStart(4, '0')}`;
    const reply = await postJson(agent, `${base}/api/v1/agent/register`, agentAuth, {
      hostname, region: REGIONS[n % REGIONS.length], role: 'worker', max_instances: 8, agent_version: '1.0.0', protocol_version: 1,
    });
    if (reply.status !== 200) throw new Error(`register answered ${reply.status}: ${reply.text}`);
    const body = JSON.parse(reply.text) as { node_id: string; node_credential: string };
    const components = { 'node-agent': n % 3 === 0 ? '2.0.0' : '1.0.0', runtime: n % 2 === 0 ? '1.4.2' : '1.5.0' };
    const beat = await postJson(agent, `${base}/api/v1/agent/heartbeat`, { ...agentAuth, [CREDENTIAL_HEADER]: body.node_credential }, {
      node_id: body.node_id, agent_version: '1.0.0', protocol_version: 1, components, instances: [], generation: 0,
    });
    if (beat.status !== 200) throw new Error(`heartbeat answered ${beat.status}: ${beat.text}`);
    registered.push({ id: body.node_id, hostname });
  });
  // Some instances: one deployment placed over the fleet.
  const deployment = await postJson(agent, `${base}/api/v1/deployments`, operatorAuth, { name: 'web', replicas: 400, workload: { command: 'sleep', args: ['3600'] } });
  if (deployment.status !== 201) throw new Error(`create deployment answered ${deployment.status}: ${deployment.text}`);
  const placedBy = Date.now() + 60_000;
  for (;;) {
    const list = await getJson(agent, `${base}/api/v1/nodes`, operatorAuth);
    const active = (JSON.parse(list.text) as { active_instances: number }[]).reduce((s, n) => s + n.active_instances, 0);
    if (active >= 400) break;
    if (Date.now() > placedBy) throw new Error(`only ${active} of 400 instances placed`);
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log(`set up ${nodes} nodes (registered + heartbeat over HTTP) and 400 instances in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s`);

  // The fleet page's API calls on their own, from this process (no browser): the server's share.
  const alone: Record<string, { ms: number[]; bytes: number }> = {};
  for (const path of ['/api/v1/nodes', '/api/v1/nodes?limit=100', '/api/v1/fleet/summary']) {
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const reply = await getJson(agent, `${base}${path}`, operatorAuth);
      ms.push(Math.round(performance.now() - t0));
      bytes = reply.status === 200 ? reply.text.length : -reply.status;
    }
    alone[path] = { ms, bytes };
    console.log(`GET ${path} alone: ${ms.join(', ')} ms, ${bytes} B`);
  }

  const sample = registered[0] as { id: string };
  const pages: PageCase[] = [
    { name: 'fleet', hash: '#/fleet', ready: 'fleet' },
    { name: 'node', hash: `#/nodes/${sample.id}`, ready: 'loaded' },
    { name: 'rollouts', hash: '#/rollouts', ready: 'loaded' },
    { name: 'approvals', hash: '#/approvals', ready: 'loaded' },
    { name: 'migrations', hash: '#/migrations', ready: 'loaded' },
    { name: 'events', hash: '#/events', ready: 'loaded' },
    { name: 'drift', hash: '#/drift', ready: 'loaded' },
    { name: 'operators', hash: '#/operators', ready: 'loaded' },
    { name: 'artifacts', hash: '#/artifacts', ready: 'loaded' },
  ];

  const browser = await chromium.launch({
    executablePath: values.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const results: Record<string, unknown>[] = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, baseURL: base });
    const login = await context.request.post('/api/v1/session', { data: { token: viewerToken } });
    if (login.status() !== 200) throw new Error(`login answered ${login.status()}`);
    const page = await context.newPage();
    for (const c of pages) {
      const times: number[] = [];
      const afterData: number[] = [];
      let requests: { path: string; start: number; transfer: number; decoded: number; ms: number }[] = [];
      // The first load warms the browser's cache (as for a person who opened the dashboard before); all are reported.
      for (let i = 0; i < loads; i++) {
        await page.goto('about:blank');
        await page.goto(`/ui/${c.hash}`);
        const handle = await page.waitForFunction(isShown, c.ready, { polling: 'raf', timeout: 60_000 });
        const shownAt = (await handle.jsonValue()) as number;
        times.push(Math.round(shownAt));
        // The page's own share: from its last API answer to its content on screen (parse + render).
        const lastAnswer = await page.evaluate(
          (at) =>
            Math.max(
              0,
              ...(performance.getEntriesByType('resource') as PerformanceResourceTiming[])
                .filter((e) => e.name.includes('/api/v1/') && !e.name.includes('/events') && e.responseEnd <= at)
                .map((e) => e.responseEnd),
            ),
          shownAt,
        );
        afterData.push(Math.round(shownAt - lastAnswer));
        requests = await page.evaluate(() =>
          ([...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')] as PerformanceResourceTiming[])
            .filter((e) => !e.name.includes('/events/stream'))
            .map((e) => ({ path: new URL(e.name).pathname + new URL(e.name).search, start: Math.round(e.startTime), transfer: e.transferSize, decoded: e.decodedBodySize, ms: Math.round(e.responseEnd - e.startTime) })),
        );
      }
      const sorted = [...times].sort((a, b) => a - b);
      const result = { page: c.name, loads: times, p50: percentile(sorted, 0.5), max: sorted[sorted.length - 1] ?? 0, after_last_api_answer: afterData, requests };
      results.push(result);
      console.log(`${c.name.padEnd(10)} p50 ${String(result.p50).padStart(5)} ms  max ${String(result.max).padStart(5)} ms  (${times.join(', ')}; after its data arrived: ${afterData.join(', ')})`);
      for (const r of requests) console.log(`             at ${String(r.start).padStart(4)} ms ${r.path.padEnd(48)} ${String(r.transfer).padStart(8)} B on the wire ${String(r.decoded).padStart(8)} B decoded ${String(r.ms).padStart(5)} ms`);
    }
  } finally {
    await browser.close();
  }
  const worst = Math.max(...results.map((r) => r.max as number));
  const worstP50 = Math.max(...results.map((r) => r.p50 as number));
  console.log(`slowest page: p50 ${worstP50} ms, max ${worst} ms (goal: < 1000 ms)`);
  appendRun(values.out as string, { at: new Date().toISOString(), nodes, loads, api_alone: alone, pages: results, worst_p50_ms: worstP50, worst_max_ms: worst });
} finally {
  await cleanup();
}
