import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { EventRow } from '../../src/store/events.js';
import type { PolicyView } from '../../src/store/policies.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';
import { BUNDLE } from '../support/processes.js';

const run = promisify(execFile);
const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  alice: 'alice-approver-token-0123456789',
  bob: 'bob-approver-token-0123456789',
  admin: 'admin-token-0123456789',
  agent: 'agent-token-0123456789',
} as const;
const ROLES: Record<keyof typeof TOKENS, string> = { viewer: 'viewer', operator: 'operator', alice: 'approver', bob: 'approver', admin: 'admin', agent: 'agent' };

interface Window {
  days: string[];
  start: string;
  end: string;
  timezone: string;
}
interface RolloutDetail {
  id: string;
  status: string;
  created_by: string;
  spec: { approval: { required: boolean; distinctApprover: boolean }; window?: Window };
  policies: { name: string; requires: string[] }[];
  next_window_open: string | null;
  tasks: { hostname: string; state: string }[];
}
interface PlanReply {
  spec: RolloutDetail['spec'];
  policies: RolloutDetail['policies'];
}

/** A window on every day that is closed now: it opens two hours from now, for an hour (UTC). */
function closedWindow(now = new Date()): Window {
  const hh = (h: number) => `${String(h % 24).padStart(2, '0')}:00`;
  return { days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: hh(now.getUTCHours() + 2), end: hh(now.getUTCHours() + 3), timezone: 'UTC' };
}

const spec = (name: string, over: Record<string, unknown> = {}) => ({
  name,
  target: { component: 'web', version: '2.0.0' },
  selector: { hostnames: ['pol-1'] },
  strategy: { drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' } },
  ...over,
});

describe(`operator-side policies on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let anonymous: ApiClient;
  let node: FakeNode;
  const as = (who: keyof typeof TOKENS) => anonymous.withToken(TOKENS[who]);
  const keys = generateSigningKeyPair();
  const window = closedWindow();
  const guard = {
    name: 'web-guard',
    description: 'web changes need a second pair of eyes, at night',
    match: { component: 'web' },
    approval: { required: true, distinctApprover: true },
    windows: [window],
  };
  const policyRows = () => t.db.query<{ name: string; document: unknown }>('SELECT name, document FROM policies ORDER BY name');
  const count = async (table: 'policies' | 'events' | 'rollouts') => (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n;
  const rollout = (id: string) => as('viewer').ok<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const eventsOf = (id: string) => as('viewer').ok<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}`);

  async function drydock(token: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [BUNDLE, ...args], { env: { ...process.env, DRYDOCK_URL: op.url, DRYDOCK_TOKEN: token }, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout, stderr: e.stderr };
    }
  }

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-policies-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([name, token]) => ({ name, token, role: ROLES[name as keyof typeof TOKENS] })) }));
    op = await startTestOperator(t.db, { tokensFile });
    anonymous = new ApiClient(op.url);
    node = await FakeNode.register(as('agent'), { hostname: 'pol-1', region: 'us-east', max_instances: 2 });
    node.components = { web: '1.0.0' };
    await node.heartbeat();
    node.startHeartbeats(200);
    for (const version of ['1.0.0', '2.0.0']) {
      const bytes = randomBytes(64);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature: signArtifact(keys.privatePem, { component: 'web', version, kind: 'binary', sha256 }), public_key: keys.publicPem });
      const response = await fetch(`${op.url}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKENS.admin}` }, body: new Uint8Array(bytes) });
      const artifact = (await response.json()) as { id: string };
      if (version === '2.0.0') expect((await as('admin').post(`/api/v1/artifacts/${artifact.id}/bless`)).status).toBe(200);
    }
  });

  afterAll(async () => {
    await node?.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('only an admin sets a policy; a bad policy file is refused with 400 and the paths, and nothing is stored', async () => {
    const before = { policies: await count('policies'), events: await count('events') };
    for (const who of ['viewer', 'operator', 'alice'] as const) expectApiError(await as(who).request('PUT', '/api/v1/policies', guard), 403, 'FORBIDDEN');
    const bad: [unknown, string[]][] = [
      [{ ...guard, owner: 'me' }, ['(root)']],
      [{ ...guard, match: { component: 'web', hostname: 'x' } }, ['match']],
      [{ ...guard, match: {} }, ['match']],
      [{ name: 'nothing', match: { component: 'web' } }, ['(root)']],
      [{ ...guard, approval: { required: 'yes' } }, ['approval.required']],
      [{ ...guard, windows: [{ ...window, start: '2am' }] }, ['windows.0.start']],
      [{ ...guard, windows: [] }, ['windows']],
    ];
    for (const [body, paths] of bad) {
      const error = expectApiError(await as('admin').request('PUT', '/api/v1/policies', body), 400, 'POLICY_INVALID');
      expect((error.details.issues as { path: string }[]).map((i) => i.path)).toEqual(paths);
    }
    expectApiError(await as('admin').request('PUT', '/api/v1/policies', [guard]), 400, 'VALIDATION_FAILED');
    expect({ policies: await count('policies'), events: await count('events') }).toEqual(before);
    expect(await as('viewer').ok<PolicyView[]>('/api/v1/policies')).toEqual([]);

    const created = await as('admin').request<PolicyView>('PUT', '/api/v1/policies', guard);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'web-guard', created_by: 'admin', policy: { ...guard, match: { component: 'web' } } });
    expect(await policyRows()).toEqual([{ name: 'web-guard', document: guard }]);
    const replaced = await as('admin').request<PolicyView>('PUT', '/api/v1/policies', guard);
    expect(replaced.status).toBe(200);
    expect((await as('viewer').ok<PolicyView[]>('/api/v1/policies')).map((p) => p.name)).toEqual(['web-guard']);
    expect((await as('viewer').ok<EventRow[]>('/api/v1/events?after=0&kind_prefix=policy.')).map((e) => [e.kind, e.actor, e.data.created])).toEqual([
      ['policy.set', 'admin', true],
      ['policy.set', 'admin', false],
    ]);
    expectApiError(await as('viewer').get('/api/v1/policies/nope'), 404, 'POLICY_NOT_FOUND');
  });

  it('plan shows the effective spec and the policies that applied; an uncovered component is left alone', async () => {
    const planned = await as('operator').post<PlanReply>('/api/v1/rollouts/plan', spec('plan-web'));
    expect(planned.status).toBe(200);
    expect(planned.body.spec).toMatchObject({ approval: { required: true, distinctApprover: true }, window });
    expect(planned.body.policies).toEqual([{ name: 'web-guard', requires: ['approval', 'distinct approver', `window daily ${window.start}-${window.end} UTC`] }]);
    const other = await as('operator').post<PlanReply>('/api/v1/rollouts/plan', spec('plan-api', { target: { component: 'api', version: '1.0.0' } }));
    expect(other.body).toMatchObject({ spec: { approval: { required: false, distinctApprover: false } }, policies: [] });
    expect(other.body.spec.window).toBeUndefined();
    // A spec window the policy does not allow is refused, naming the policy.
    const outside = closedWindow(new Date(Date.now() + 2 * 3_600_000)); // two hours after the policy's
    const error = expectApiError(await as('operator').post('/api/v1/rollouts/plan', spec('plan-outside', { window: outside })), 400, 'ROLLOUT_SPEC_INVALID');
    expect(error.message).toMatch(/window: .*policy web-guard allows/);
  });

  it('holds an operator-token rollout without approval in awaiting_approval, names the policy, and enforces a distinct approver', async () => {
    const created = await as('operator').post<RolloutDetail>('/api/v1/rollouts', spec('web-by-operator'));
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.body).toMatchObject({ status: 'awaiting_approval', spec: { approval: { required: true, distinctApprover: true }, window }, policies: [{ name: 'web-guard' }] });
    expect((await rollout(id)).policies.map((p) => p.name)).toEqual(['web-guard']);
    const events = await eventsOf(id);
    expect(events.find((e) => e.kind === 'rollout.created')?.data).toMatchObject({ policies: ['web-guard'] });
    expect(events.find((e) => e.kind === 'rollout.approval_requested')?.data).toMatchObject({ distinct_approver: true, policies: ['web-guard'] });
    expect((await rollout(id)).tasks.map((task) => task.state)).toEqual(['pending']);
    expectApiError(await as('operator').post(`/api/v1/rollouts/${id}/approve`, {}), 403, 'FORBIDDEN');
    expect((await as('operator').post<RolloutDetail>(`/api/v1/rollouts/${id}/abort`)).body.status).toBe('aborted');

    // An approver who created it cannot approve it, with or without edits that try to drop the rule.
    const own = await as('alice').post<RolloutDetail>('/api/v1/rollouts', spec('web-by-alice', { approval: { required: false, distinctApprover: false } }));
    expect(own.body).toMatchObject({ status: 'awaiting_approval', created_by: 'alice' });
    expect(expectApiError(await as('alice').post(`/api/v1/rollouts/${own.body.id}/approve`, {}), 403, 'DISTINCT_APPROVER_REQUIRED').details).toEqual({ creator: 'alice' });
    expectApiError(await as('alice').post(`/api/v1/rollouts/${own.body.id}/approve`, { set: ['approval.distinctApprover=false', 'approval.required=false'] }), 403, 'DISTINCT_APPROVER_REQUIRED');
    expect((await rollout(own.body.id)).status).toBe('awaiting_approval');
    // Bob's edits cannot weaken the policy either: a window outside it is refused, dropping approval changes nothing.
    expectApiError(await as('bob').post(`/api/v1/rollouts/${own.body.id}/approve`, { set: ['window.start=12:00', 'window.end=12:30', 'window.timezone=Europe/Berlin'] }), 400, 'ROLLOUT_SPEC_INVALID');
    const approved = await as('bob').post<RolloutDetail>(`/api/v1/rollouts/${own.body.id}/approve`, { set: ['approval.required=false', 'approval.distinctApprover=false'] });
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ spec: { approval: { required: true, distinctApprover: true }, window }, policies: [{ name: 'web-guard' }] });
    // The policy's window applies: it is closed now, so nothing starts.
    const waiting = await waitFor('the rollout to wait for the policy window', async () => {
      const r = await rollout(own.body.id);
      return r.status === 'waiting_for_window' && r;
    });
    expect(waiting.next_window_open).toMatch(new RegExp(`T${window.start}:00`));
    expect(waiting.tasks.map((task) => task.state)).toEqual(['pending']);
    expect((await as('bob').post<RolloutDetail>(`/api/v1/rollouts/${own.body.id}/abort`)).status).toBe(200);
    await waitFor('the rollout to be aborted', async () => (await rollout(own.body.id)).status === 'aborted');
  });

  it('drives policies and quarantine from the CLI', async () => {
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, stringify({ name: 'gold-nodes', match: { selector: { labels: { tier: 'gold' } } }, approval: { required: true } }));
    const refused = await drydock(TOKENS.operator, 'policy', 'set', '-f', file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/FORBIDDEN/);
    const set = await drydock(TOKENS.admin, 'policy', 'set', '-f', file);
    expect(set.stderr).toBe('');
    expect(set.stdout).toMatch(/policy gold-nodes set: tier=gold requires approval/);
    writeFileSync(join(dir, 'bad.yaml'), stringify({ name: 'bad', match: { component: 'web' }, approval: { required: true }, typo: 1 }));
    const bad = await drydock(TOKENS.admin, 'policy', 'set', '-f', join(dir, 'bad.yaml'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/POLICY_INVALID/);
    const list = JSON.parse((await drydock(TOKENS.viewer, 'policy', 'list', '--json')).stdout) as PolicyView[];
    expect(list.map((p) => p.name)).toEqual(['gold-nodes', 'web-guard']);
    const table = await drydock(TOKENS.viewer, 'policy', 'list');
    expect(table.stdout).toMatch(/web-guard\s+component=web\s+approval; distinct approver; window/);
    expect(JSON.parse((await drydock(TOKENS.viewer, 'policy', 'show', 'web-guard', '--json')).stdout)).toMatchObject({ name: 'web-guard', policy: guard });
    expect(JSON.parse((await drydock(TOKENS.viewer, 'quarantine', 'list', '--json')).stdout)).toEqual([]);
    const clear = await drydock(TOKENS.alice, 'quarantine', 'clear', 'web', '2.0.0', '--reason', 'not needed');
    expect(clear.code).toBe(1);
    expect(clear.stderr).toMatch(/QUARANTINE_NOT_FOUND/);
    // Deleting a policy is an admin's too; plans stop naming it.
    expectApiError(await as('operator').request('DELETE', '/api/v1/policies/web-guard'), 403, 'FORBIDDEN');
    expect((await as('admin').request('DELETE', '/api/v1/policies/web-guard')).status).toBe(200);
    expect((await as('operator').post<PlanReply>('/api/v1/rollouts/plan', spec('plan-after'))).body.policies).toEqual([]);
  });
});
