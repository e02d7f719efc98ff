// The role matrix, route by route and role by role, against a real operator with tokens on.
// README's Auth section states this same table; a route the app has but this table lacks
// fails the first test, so a new route cannot slip in without deciding who may call it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator } from '../support/operator.js';

const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  approver: 'approver-token-0123456789',
  admin: 'admin-token-0123456789',
  agent: 'agent-token-0123456789',
} as const;
const ROLES = ['none', 'viewer', 'operator', 'approver', 'admin', 'agent'] as const;
type Caller = (typeof ROLES)[number];

/** Who may call a route: anyone (`open`), people from this role up, or agents only. */
type Need = 'open' | 'viewer' | 'operator' | 'approver' | 'admin' | 'agent';
const PEOPLE = ['viewer', 'operator', 'approver', 'admin'] as const;

/** Every route the operator serves (HEAD follows its GET). */
const MATRIX: Record<string, Need> = {
  'GET /openapi.json': 'open',
  'GET /health': 'open',
  'GET /health/live': 'open',
  'GET /health/ready': 'open',
  'GET /metrics': 'open',

  'GET /api/v1/nodes': 'viewer',
  'GET /api/v1/fleet/summary': 'viewer',
  'GET /api/v1/nodes/:id': 'viewer',
  'GET /api/v1/nodes/:id/instances': 'viewer',
  'GET /api/v1/nodes/:id/components': 'viewer',
  'PUT /api/v1/nodes/:id/components/:component': 'operator',
  'POST /api/v1/nodes/:id/cordon': 'operator',
  'POST /api/v1/nodes/:id/uncordon': 'operator',
  'POST /api/v1/nodes/:id/enable': 'operator',
  'POST /api/v1/nodes/:id/drain': 'operator',
  'POST /api/v1/nodes/:id/re-enroll': 'admin',
  // Decommissioning changes the fleet like a drain does: the roles that drain may delete a drained node.
  'DELETE /api/v1/nodes/:id': 'operator',

  'GET /api/v1/instances': 'viewer',
  'GET /api/v1/instances/:id': 'viewer',
  'GET /api/v1/migrations': 'viewer',
  'GET /api/v1/operators': 'viewer',
  'GET /api/v1/migrations/:id': 'viewer',
  'GET /api/v1/instances/:id/health': 'viewer',
  'POST /api/v1/instances/:id/migrate': 'operator',
  'PUT /api/v1/instances/:id/volume': 'operator',
  'DELETE /api/v1/instances/:id/volume': 'operator',
  'PUT /api/v1/instances/:id/activity': 'operator',
  'DELETE /api/v1/instances/:id/activity': 'operator',

  'GET /api/v1/deployments': 'viewer',
  'POST /api/v1/deployments': 'operator',
  'GET /api/v1/deployments/active': 'viewer',
  'GET /api/v1/deployments/:id': 'viewer',
  'PUT /api/v1/deployments/:id': 'operator',
  'DELETE /api/v1/deployments/:id': 'operator',
  'GET /api/v1/deployments/:id/health': 'viewer',
  'GET /api/v1/deployments/:id/endpoints': 'viewer',

  'GET /api/v1/drift': 'viewer',
  'GET /api/v1/compat': 'viewer',
  'PUT /api/v1/compat': 'operator',

  'GET /api/v1/artifacts': 'viewer',
  'POST /api/v1/artifacts': 'operator',
  'GET /api/v1/artifacts/:id': 'viewer',
  'GET /api/v1/artifacts/:id/blob': 'viewer',
  'POST /api/v1/artifacts/:id/bless': 'operator',
  'POST /api/v1/artifacts/:id/promote': 'operator',
  'POST /api/v1/artifacts/:id/archive': 'operator',

  'GET /api/v1/events': 'viewer',
  'GET /api/v1/events/stream': 'viewer',

  'GET /api/v1/rollouts': 'viewer',
  'POST /api/v1/rollouts': 'operator',
  // A dry run changes nothing, so readers may plan.
  'POST /api/v1/rollouts/plan': 'viewer',
  'GET /api/v1/rollouts/:id': 'viewer',
  'POST /api/v1/rollouts/:id/pause': 'operator',
  'POST /api/v1/rollouts/:id/resume': 'operator',
  'POST /api/v1/rollouts/:id/abort': 'operator',
  'POST /api/v1/rollouts/:id/rollback': 'operator',
  'POST /api/v1/rollouts/:id/approve': 'approver',
  'POST /api/v1/rollouts/:id/reject': 'approver',
  'POST /api/v1/rollouts/:id/decide': 'approver',
  'GET /api/v1/approvals': 'viewer',

  'GET /api/v1/policies': 'viewer',
  'PUT /api/v1/policies': 'admin',
  'GET /api/v1/policies/:name': 'viewer',
  'DELETE /api/v1/policies/:name': 'admin',

  'GET /api/v1/webhooks': 'viewer',
  'POST /api/v1/webhooks': 'admin',
  'DELETE /api/v1/webhooks/:id': 'admin',
  'GET /api/v1/webhooks/deliveries': 'viewer',
  'GET /api/v1/quarantine': 'viewer',
  'POST /api/v1/quarantine/:component/:version/clear': 'approver',

  // The dashboard: static files and the redirect to them are open (they hold no data); logging in
  // and asking "who am I" are open, logging out needs a session (or a token) like any read.
  'GET /': 'open',
  'GET /ui': 'open',
  // The router prints the static files' `/ui/*` as `/ui*` (trailing slashes are ignored).
  'GET /ui*': 'open',
  'POST /api/v1/session': 'open',
  'GET /api/v1/session': 'open',
  'DELETE /api/v1/session': 'viewer',

  'POST /api/v1/agent/register': 'agent',
  'POST /api/v1/agent/heartbeat': 'agent',
  'GET /api/v1/agent/desired': 'agent',
  'GET /api/v1/agent/artifacts/:id/blob': 'agent',
};

type Outcome = 401 | 403 | 'allowed';

/** The rule the README states: agents only on the gateway, people never there, people's roles ordered. */
function expectedOutcome(need: Need, caller: Caller): Outcome {
  if (need === 'open') return 'allowed';
  if (caller === 'none') return 401;
  if (need === 'agent') return caller === 'agent' ? 'allowed' : 403;
  if (caller === 'agent') return 403;
  return PEOPLE.indexOf(caller) >= PEOPLE.indexOf(need) ? 'allowed' : 403;
}

/** `METHOD path` of every route in the app, read from the router itself (printRoutes' tree). */
function routesOf(op: RunningOperator): string[] {
  const stack: string[] = [];
  const routes: string[] = [];
  for (const line of op.app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?/.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? '').length / 4;
    stack.length = depth;
    stack.push(match[2] ?? '');
    for (const method of (match[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean)) routes.push(`${method} ${stack.join('')}`);
  }
  return routes;
}

// Params point at nothing: a caller who gets past auth meets a 404 or 400 and changes nothing.
const concrete = (path: string) =>
  path.replace('/ui*', '/ui/index.html').replace(':component', 'no-such-component').replace(':version', '9.9.9').replace(':name', 'no-such-policy').replace(':id', 'no-such-id');

describe(`role matrix: every route × every role on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-matrix-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-bot`, token, role })) }));
    // A long grace: the node must not turn `down` mid-test, so the world is still between calls.
    op = await startTestOperator(t.db, { tokensFile, heartbeatGraceMs: 3_600_000 });
    await FakeNode.register(new ApiClient(op.url, TOKENS.agent), { hostname: 'matrix-1' });
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A digest of every table but the leader lease and the replica registry (both refreshed on a timer): equal digests, same world. */
  const worldDigest = async (): Promise<string> => {
    const tables = await t.db.query<{ tablename: string }>(
      `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT IN ('leases', 'operator_replicas') ORDER BY tablename`,
    );
    const parts = tables.map(({ tablename }) => `SELECT '${tablename}' AS t, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS d FROM "${tablename}" x`);
    const rows = await t.db.query<{ t: string; d: string }>(parts.join(' UNION ALL '));
    return rows.map((r) => `${r.t}:${r.d}`).sort().join(',');
  };

  const call = async (method: string, path: string, caller: Caller) => {
    const headers: Record<string, string> = {};
    if (caller !== 'none') headers.authorization = `Bearer ${TOKENS[caller]}`;
    const withBody = method === 'POST' || method === 'PUT';
    if (withBody) headers['content-type'] = 'application/json';
    const response = await fetch(`${op.url}${concrete(path)}`, { method, headers, body: withBody ? '{}' : undefined, signal: AbortSignal.timeout(15_000) });
    const refused = response.status === 401 || response.status === 403;
    // Only refusals are read whole: an allowed call may be a stream (events/stream) that never ends.
    const text = refused && method !== 'HEAD' ? await response.text() : (await response.body?.cancel(), '');
    return { status: response.status, text };
  };

  it('has a row for every route the app serves, and no row for a route it does not', async () => {
    const served = routesOf(op).filter((r) => !r.startsWith('HEAD '));
    expect(served.length).toBeGreaterThan(40);
    expect(served.filter((r) => !(r in MATRIX)), 'routes without a row in MATRIX').toEqual([]);
    expect(Object.keys(MATRIX).filter((r) => !served.includes(r)), 'rows for routes the app does not have').toEqual([]);
    // HEAD is only ever the automatic twin of a GET, so it shares the GET row.
    for (const head of routesOf(op).filter((r) => r.startsWith('HEAD '))) expect(served).toContain(head.replace('HEAD ', 'GET '));
  });

  it.each(Object.entries(MATRIX))('%s: %s', async (route, need) => {
    const [method = '', path = ''] = route.split(' ');
    for (const verb of method === 'GET' ? ['GET', 'HEAD'] : [method]) {
      for (const caller of ROLES) {
        const expected = expectedOutcome(need, caller);
        const before = expected === 'allowed' ? '' : await worldDigest();
        const { status, text } = await call(verb, path, caller);
        const outcome: Outcome = status === 401 || status === 403 ? status : 'allowed';
        expect({ route: `${verb} ${path}`, caller, outcome }).toEqual({ route: `${verb} ${path}`, caller, outcome: expected });
        if (expected === 'allowed') continue;
        if (verb !== 'HEAD') {
          expect(JSON.parse(text)).toMatchObject({ error: { code: expected === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN' } });
        }
        expect(await worldDigest(), `${verb} ${path} as ${caller} changed the database`).toBe(before);
      }
    }
  });
});
