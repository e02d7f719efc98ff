// Fuzzes every route of a real operator (from its own /openapi.json, so a new route is fuzzed
// without touching this file) with malformed requests: NUL bytes and overlong values in paths,
// queries and bodies, wrong types, out-of-range numbers, broken JSON, wrong content types, bad
// %-escapes, deep nesting; some without a token. Asserts: no 5xx, every error in the catalog
// shape, nothing accepted, and no change to the world. Seeded: a failure prints the seed and
// the requests; DRYDOCK_FUZZ_SEED=<seed> replays it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';
import { type FuzzRequest, type FuzzRoute, malformedRequest, Rng, routesFromOpenApi, routesFromPrintout } from './fuzz-requests.js';

const SEED = Number(process.env.DRYDOCK_FUZZ_SEED ?? 20261201);
const REQUESTS = Number(process.env.DRYDOCK_FUZZ_REQUESTS ?? 5000);
const CONCURRENCY = 8;
const TOKENS = { admin: 'fuzz-admin-token-0123456789', agent: 'fuzz-agent-token-0123456789' } as const;
/** Columns that move on their own (timers, lease renewals), not because of a request. */
const MOVING_COLUMNS = ['updated_at', 'last_heartbeat_at', 'observed_generation', 'renewed_at', 'expires_at', 'heartbeat_at'];
const SKIPPED_TABLES = new Set(['leases', 'operator_replicas', 'schema_migrations']);

interface Reply {
  status: number;
  contentType: string;
  text: string;
}

function send(port: number, agent: Agent, req: FuzzRequest): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      { host: '127.0.0.1', port, agent, method: req.method, path: req.path, headers: { ...req.headers, ...(req.body ? { 'content-length': String(req.body.length) } : {}) }, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error('no answer within 15 s')));
    outgoing.on('error', reject);
    outgoing.end(req.body);
  });
}

/** What is wrong with a reply to a malformed request, or undefined when it is a proper refusal. */
function problemWith(reply: Reply): string | undefined {
  if (reply.status >= 500) return `answered ${reply.status}`;
  if (reply.status < 400) return `accepted a malformed request with ${reply.status}`;
  if (!reply.contentType.includes('application/json')) return `error without a JSON body (${reply.contentType})`;
  let body: unknown;
  try {
    body = JSON.parse(reply.text);
  } catch {
    return 'error body is not JSON';
  }
  const error = (body as { error?: Record<string, unknown> }).error;
  if (Object.keys(body as object).join() !== 'error' || !error) return 'error body is not {"error": …}';
  if (Object.keys(error).sort().join() !== 'code,details,message') return 'error lacks code, message or details';
  if (typeof error.code !== 'string' || !/^[A-Z][A-Z0-9_]*$/.test(error.code)) return `unstable error code ${String(error.code)}`;
  if (typeof error.message !== 'string' || error.message.length < 10) return 'error message missing';
  if (typeof error.details !== 'object' || error.details === null) return 'error details not an object';
  if (/\n\s+at /.test(reply.text)) return 'stack trace in the body';
  return undefined;
}

describe(`operator fuzz on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let nodes: FakeNode[];
  let admin: ApiClient;

  /** Every row of every table (minus columns that move on their own), as text. */
  async function world(): Promise<Record<string, string[]>> {
    const tables = await t.db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`,
    );
    const snapshot: Record<string, string[]> = {};
    for (const { table_name: table } of tables) {
      if (SKIPPED_TABLES.has(table)) continue;
      const rows = await t.db.query<{ row: string }>(`SELECT (to_jsonb(x) - $1::text[])::text AS row FROM "${table}" x ORDER BY 1`, [MOVING_COLUMNS]);
      snapshot[table] = rows.map((r) => r.row);
    }
    return snapshot;
  }

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-fuzz-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `fuzz-${role}`, token, role })) }));
    // A long grace: the seeded nodes stop heartbeating during the fuzz and must not go down.
    op = await startTestOperator(t.db, { tokensFile, heartbeatGraceMs: 10 * 60_000 });
    const anonymous = new ApiClient(op.url);
    admin = anonymous.withToken(TOKENS.admin);
    nodes = [];
    for (const [i, region] of ['us-east', 'us-east', 'eu-west'].entries()) {
      nodes.push(await FakeNode.register(anonymous.withToken(TOKENS.agent), { hostname: `fuzz-${i + 1}`, region }));
    }
    const created = await admin.post('/api/v1/deployments', { name: 'fuzz-web', replicas: 2, min_available: 1, workload: { command: 'sleep', args: ['60'] } });
    expect(created.status, created.text).toBeLessThan(300);
    const bytes = Buffer.from('fuzz artifact bytes');
    const published = await fetch(`${op.url}/api/v1/artifacts?component=node-agent&version=9.9.9&kind=binary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/octet-stream' },
      body: new Uint8Array(bytes),
    });
    expect(published.status).toBe(201);
    // Run the deployment's instances healthy, then let the fleet settle before the snapshot.
    await waitFor('instances placed and running', async () => {
      for (const node of nodes) {
        const desired = await node.heartbeat();
        for (const instance of desired.instances) node.runHealthy(instance.id, 30_000 + nodes.indexOf(node) * 100 + desired.instances.indexOf(instance));
      }
      const rows = await t.db.query<{ healthy: boolean }>('SELECT healthy FROM instances');
      return rows.length === 2 && rows.every((r) => r.healthy);
    });
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`refuses ${REQUESTS} malformed requests across every route with catalog 4xx and changes nothing (seed ${SEED})`, async () => {
    const spec = (await admin.ok<Parameters<typeof routesFromOpenApi>[0]>('/openapi.json')) as Parameters<typeof routesFromOpenApi>[0];
    const routes: FuzzRoute[] = routesFromOpenApi(spec);
    // Routes hidden from the OpenAPI document (/openapi.json itself) are fuzzed without schemas.
    const known = new Set(routes.map((r) => `${r.method} ${r.path}`));
    for (const served of routesFromPrintout(op.app.printRoutes({ commonPrefix: false }))) {
      if (known.has(`${served.method} ${served.path}`)) continue;
      routes.push({ ...served, params: [...served.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string), query: {}, body: undefined });
    }
    expect(routes.length).toBeGreaterThan(30);
    expect(routes.map((r) => `${r.method} ${r.path}`)).toContain('GET /openapi.json');
    const instances = await t.db.query<{ id: string }>('SELECT id FROM instances ORDER BY id');
    const [artifact] = await t.db.query<{ id: string }>('SELECT id FROM artifacts');
    const [deployment] = await t.db.query<{ id: string }>('SELECT id FROM deployments');
    const ids = [...nodes.flatMap((n) => [n.id, n.hostname]), ...instances.map((i) => i.id), artifact?.id, deployment?.id, 'fuzz-web', 'node-agent', 'nope'];
    const targets = {
      params: {
        id: ids.filter((x): x is string => typeof x === 'string'),
        component: ['node-agent', 'hypervisor', 'nope'],
        version: ['9.9.9', '1.0.0', 'nope'],
        name: ['fuzz-policy', 'nope'],
      },
      tokenFor: (route: FuzzRoute) => (route.path.startsWith('/api/v1/agent/') ? TOKENS.agent : TOKENS.admin),
    };

    // Settle: a couple of reconciler passes, then the snapshot everything is compared with.
    let passes = op.ctx.reconciler.passes;
    await waitFor('reconciler passes before the snapshot', async () => op.ctx.reconciler.passes >= passes + 2);
    const before = await world();

    // All requests are built before any is sent, so the seed alone decides them.
    const rng = new Rng(SEED);
    const planned = Array.from({ length: REQUESTS }, (_, n) => {
      const route = routes[n % routes.length] as FuzzRoute;
      const req = malformedRequest(rng, route, targets);
      // About one request in ten comes without a token, or with one nobody issued.
      if (rng.chance(0.1)) {
        if (rng.chance(0.5)) delete req.headers.authorization;
        else req.headers.authorization = 'Bearer not-a-token-anyone-issued';
        req.poison += '+unauthenticated';
      }
      return { route, req };
    });
    const port = Number(new URL(op.url).port);
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const failures: string[] = [];
    const covered = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < REQUESTS) {
        const n = next++;
        const { route, req } = planned[n] as (typeof planned)[number];
        const reply = await send(port, agent, req).catch((error: unknown) => ({ status: 0, contentType: '', text: String(error) }));
        covered.add(`${route.method} ${route.path}`);
        const problem = reply.status === 0 ? `no answer: ${reply.text}` : problemWith(reply);
        if (problem) failures.push(`#${n} ${req.method} ${req.path.slice(0, 200)} [${req.poison}${req.headers["content-type"] ? ` ${req.headers["content-type"]}` : ""}] → ${problem}: ${reply.text.slice(0, 300)}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    agent.destroy();

    passes = op.ctx.reconciler.passes;
    await waitFor('reconciler passes after the fuzz', async () => op.ctx.reconciler.passes >= passes + 2);
    const after = await world();
    expect(covered.size, `seed ${SEED}`).toBe(routes.length);
    expect(failures.slice(0, 30), `seed ${SEED}: ${failures.length} bad replies of ${REQUESTS} (replay with DRYDOCK_FUZZ_SEED=${SEED})`).toEqual([]);
    expect(after, `seed ${SEED}: the fuzz changed the world`).toEqual(before);
    // The operator still serves.
    expect((await admin.get('/health')).status).toBe(200);
  });
});
