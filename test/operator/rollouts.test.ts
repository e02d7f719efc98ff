import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { ApprovalView } from '../../src/store/approvals.js';
import type { ArtifactView } from '../../src/store/artifacts.js';
import type { EventRow } from '../../src/store/events.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  alice: 'alice-approver-token-0123456789',
  bob: 'bob-approver-token-0123456789',
  admin: 'admin-token-0123456789',
  agent: 'agent-token-0123456789',
} as const;
const ROLES: Record<keyof typeof TOKENS, string> = { viewer: 'viewer', operator: 'operator', alice: 'approver', bob: 'approver', admin: 'admin', agent: 'agent' };
const REGIONS = ['us-east', 'eu-west', 'ap-south'] as const;
const CHECK_IDS = [
  'active-rollout',
  'nodes-ready',
  'spare-capacity',
  'absorbing-nodes',
  'volume-last-replica',
  'backup-in-progress',
  'non-migratable',
  'artifact',
  'rollback-version',
  'downgrade',
  'compatibility',
  'disruption-budget',
  'quarantine',
];

interface Check {
  id: string;
  status: 'pass' | 'warn' | 'fail';
  message: string;
  objects: string[];
  overridden?: boolean;
}
interface PlanResponse {
  spec: Record<string, unknown>;
  plan: {
    batches: { index: number; canary: boolean; nodes: { id: string; hostname: string; region: string }[] }[];
    skipped: { id: string; hostname: string }[];
    drain_mode: string;
    moves: { instance_id: string; deployment: string; batch: number; from_node: string; from_hostname: string; to_node: string | null; to_hostname: string | null }[];
    pinned: unknown[];
    max_moves_per_instance: number;
    estimated_duration_s: number;
  };
  preflight: { checks: Check[]; blocked: boolean };
}
interface RolloutDetail {
  id: string;
  name: string;
  status: string;
  batch_count: number;
  current_batch: number;
  created_by: string;
  overrides: string[];
  counters: { total: number; done: number; failed: number; in_flight: number; skipped: number };
  batches: { index: number; canary: boolean; nodes: { hostname: string; state: string }[] }[];
  tasks: { hostname: string; region: string; state: string; batch: number; from_version: string | null }[];
  preflight: { checks: Check[] };
  approvals: ApprovalView[];
}

/** A rollout spec for `web` with quick health gates; `over` replaces top-level keys. */
function spec(name: string, over: Record<string, unknown> = {}) {
  return {
    name,
    target: { component: 'web', version: '2.0.0' },
    selector: { regions: [...REGIONS] },
    strategy: { order: 'region-by-region', batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' } },
    ...over,
  };
}

describe(`operator rollouts API on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let anonymous: ApiClient;
  const as = (who: keyof typeof TOKENS) => anonymous.withToken(TOKENS[who]);
  const nodes = new Map<string, FakeNode>();
  const node = (hostname: string) => nodes.get(hostname) as FakeNode;
  const keys = generateSigningKeyPair();
  let port = 35000;

  async function publish(version: string, options: { bless?: boolean } = {}): Promise<ArtifactView> {
    const bytes = randomBytes(64);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const query = new URLSearchParams({
      component: 'web',
      version,
      kind: 'binary',
      signature: signArtifact(keys.privatePem, { component: 'web', version, kind: 'binary', sha256 }),
      public_key: keys.publicPem,
    });
    const response = await fetch(`${op.url}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKENS.admin}` },
      body: new Uint8Array(bytes),
    });
    expect(response.status).toBe(201);
    const artifact = (await response.json()) as ArtifactView;
    if (options.bless) expect((await as('admin').post(`/api/v1/artifacts/${artifact.id}/bless`)).status).toBe(200);
    return artifact;
  }
  const count = async (table: 'rollouts' | 'events' | 'approvals' | 'rollout_tasks') =>
    (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n;
  const rollout = (id: string) => as('viewer').ok<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const eventsOf = (id: string) => as('viewer').ok<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}`);
  const waitStatus = (id: string, status: string) =>
    waitFor(`rollout ${id} to be ${status}`, async () => {
      const r = await rollout(id);
      return r.status === status && r;
    });

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-rollouts-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([name, token]) => ({ name, token, role: ROLES[name as keyof typeof TOKENS] })) }));
    op = await startTestOperator(t.db, { tokensFile });
    anonymous = new ApiClient(op.url);
    for (const region of REGIONS) {
      for (const n of [1, 2]) {
        const fake = await FakeNode.register(as('agent'), { hostname: `ro-${region}-${n}`, region, max_instances: 4 });
        fake.components = { 'node-agent': '1.0.0', web: '1.0.0' };
        await fake.heartbeat();
        fake.startHeartbeats(200);
        nodes.set(fake.hostname, fake);
      }
    }
    await publish('1.0.0');
    await publish('2.0.0', { bless: true });

    // One deployment with two healthy replicas: the plan moves them when nodes are drained.
    expect((await as('operator').post('/api/v1/deployments', { name: 'shop', replicas: 2, workload: { command: 'sleep' } })).status).toBe(201);
    const placed = await waitFor('shop placed', async () => {
      const list = await as('viewer').ok<InstanceView[]>('/api/v1/instances?deployment=shop');
      return list.length === 2 && list;
    });
    for (const instance of placed) {
      const host = [...nodes.values()].find((n) => n.id === instance.node_id) as FakeNode;
      host.runHealthy(instance.id, ++port);
      await host.heartbeat();
    }
    await waitFor('shop healthy', async () => (await as('viewer').ok<unknown[]>('/api/v1/deployments/shop/endpoints')).length === 2);
  });

  afterAll(async () => {
    for (const fake of nodes.values()) await fake.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('plans a dry run: canary then region by region, moves for every hosted instance, a full preflight report, and writes nothing', async () => {
    const before = { rollouts: await count('rollouts'), events: await count('events') };
    const response = await as('operator').post<PlanResponse>(
      '/api/v1/rollouts/plan',
      spec('plan-only', { strategy: { order: 'region-by-region', canary: { nodes: 1, soak: '10s' }, batch: { size: 1 }, drain: { mode: 'migrate' } } }),
    );
    expect(response.status).toBe(200);
    const { plan, preflight } = response.body;
    expect(plan.batches.map((b) => [b.canary, b.nodes.map((n) => n.hostname)])).toEqual([
      [true, ['ro-us-east-1']],
      [false, ['ro-us-east-2']],
      [false, ['ro-eu-west-1']],
      [false, ['ro-eu-west-2']],
      [false, ['ro-ap-south-1']],
      [false, ['ro-ap-south-2']],
    ]);
    for (const b of plan.batches) for (const n of b.nodes) expect(n.id).toBe(node(n.hostname).id);
    expect(plan.drain_mode).toBe('migrate');
    expect(plan.skipped).toEqual([]);
    expect(plan.estimated_duration_s).toBeGreaterThan(0);

    // Every shop instance moves when its node's batch drains, never into a node of the same batch.
    const shop = await as('viewer').ok<InstanceView[]>('/api/v1/instances?deployment=shop');
    const firstMoves = new Map<string, PlanResponse['plan']['moves'][number]>();
    for (const move of plan.moves) if (!firstMoves.has(move.instance_id)) firstMoves.set(move.instance_id, move);
    expect([...firstMoves.keys()].sort()).toEqual(shop.map((i) => i.id).sort());
    for (const move of plan.moves) {
      expect(move.deployment).toBe('shop');
      expect(move.to_node).not.toBeNull();
      expect(move.to_node).not.toBe(move.from_node);
      const batch = plan.batches[move.batch] as PlanResponse['plan']['batches'][number];
      expect(batch.nodes.map((n) => n.id)).toContain(move.from_node);
      expect(batch.nodes.map((n) => n.id)).not.toContain(move.to_node);
      expect(move.to_hostname).toBe([...nodes.values()].find((n) => n.id === move.to_node)?.hostname);
    }
    for (const instance of shop) expect(firstMoves.get(instance.id)?.from_node).toBe(instance.node_id);
    expect(plan.max_moves_per_instance).toBeGreaterThanOrEqual(1);

    expect(preflight.blocked).toBe(false);
    expect(preflight.checks.map((c) => c.id)).toEqual(CHECK_IDS);
    for (const c of preflight.checks) {
      expect(Object.keys(c).sort()).toEqual(['id', 'message', 'objects', 'status']);
      expect(['pass', 'warn', 'fail']).toContain(c.status);
      expect(c.message.length).toBeGreaterThan(5);
      expect(Array.isArray(c.objects)).toBe(true);
    }
    expect(preflight.checks.filter((c) => c.status !== 'pass')).toEqual([]);
    expect({ rollouts: await count('rollouts'), events: await count('events') }).toEqual(before);
  });

  it('refuses an invalid spec with 400 ROLLOUT_SPEC_INVALID naming the field, and changes nothing', async () => {
    const before = { rollouts: await count('rollouts'), events: await count('events'), tasks: await count('rollout_tasks') };
    const cases: [unknown, string][] = [
      [spec('bad-version', { target: { component: 'web', version: '2.0' } }), 'target.version'],
      [spec('bad-batch', { strategy: { batch: { percent: 0 } } }), 'strategy.batch.percent'],
      [spec('bad-order', { strategy: { order: 'sideways' } }), 'strategy.order'],
      [spec('Bad Name'), 'name'],
      [spec('bad-duration', { strategy: { health: { minHealthyTime: 'soon' } } }), 'strategy.health.minHealthyTime'],
      [{ ...spec('bad-extra'), colour: 'blue' }, '(root)'],
    ];
    for (const [body, field] of cases) {
      for (const path of ['/api/v1/rollouts/plan', '/api/v1/rollouts']) {
        const error = expectApiError(await as('admin').post(path, body), 400, 'ROLLOUT_SPEC_INVALID');
        expect((error.details.issues as { path: string }[]).map((i) => i.path)).toContain(field);
        expect(error.message).toContain(field);
      }
    }
    expect({ rollouts: await count('rollouts'), events: await count('events'), tasks: await count('rollout_tasks') }).toEqual(before);
  });

  it('refuses a failed preflight with 409 PREFLIGHT_FAILED; ?override=CHECK creates it and records the override', async () => {
    const target = node('ro-ap-south-2');
    expect((await as('operator').post(`/api/v1/nodes/${target.id}/cordon`)).status).toBe(200);
    const body = spec('override-cordoned', { selector: { hostnames: ['ro-ap-south-2'] } });
    const before = { rollouts: await count('rollouts'), events: await count('events') };

    const refused = expectApiError(await as('operator').post('/api/v1/rollouts', body), 409, 'PREFLIGHT_FAILED');
    expect(refused.details.failed).toEqual(['nodes-ready']);
    expect(refused.message).toMatch(/override/);
    const failed = (refused.details.checks as Check[]).find((c) => c.id === 'nodes-ready');
    expect(failed).toMatchObject({ status: 'fail', objects: ['ro-ap-south-2'] });
    // A plan shows the same failure and is still a 200 dry run.
    const planned = await as('operator').post<PlanResponse>('/api/v1/rollouts/plan', body);
    expect(planned.body.preflight.blocked).toBe(true);
    // Overriding another check does not help.
    expectApiError(await as('operator').post('/api/v1/rollouts?override=artifact', body), 409, 'PREFLIGHT_FAILED');
    expect({ rollouts: await count('rollouts'), events: await count('events') }).toEqual(before);

    const created = await as('operator').post<RolloutDetail>('/api/v1/rollouts?override=nodes-ready', body);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'running', overrides: ['nodes-ready'], created_by: 'operator', batch_count: 1 });
    expect(created.body.preflight.checks.find((c) => c.id === 'nodes-ready')).toMatchObject({ status: 'fail', overridden: true });
    const overridden = (await eventsOf(created.body.id)).filter((e) => e.kind === 'rollout.preflight_overridden');
    expect(overridden).toEqual([expect.objectContaining({ actor: 'operator', data: expect.objectContaining({ check: 'nodes-ready' }) })]);

    // It runs to the end once the node reports the version; the node stays cordoned (not ours to enable).
    target.followDesiredComponents = true;
    await waitStatus(created.body.id, 'completed');
    expect(target.components.web).toBe('2.0.0');
    const view = await as('viewer').ok<{ status: string; cordoned: boolean }>(`/api/v1/nodes/${target.id}`);
    expect(view).toMatchObject({ cordoned: true });
    expect((await as('operator').post(`/api/v1/nodes/${target.id}/uncordon`)).status).toBe(200);
  });

  it('waits for approval; approvers other than the creator approve, with edits that re-plan', async () => {
    const created = await as('alice').post<RolloutDetail>(
      '/api/v1/rollouts',
      spec('eu-approved', { selector: { regions: ['eu-west'] }, approval: { required: true, distinctApprover: true } }),
    );
    expect(created.status).toBe(201);
    const id = created.body.id;
    expect(created.body).toMatchObject({ status: 'awaiting_approval', created_by: 'alice', batch_count: 2, current_batch: -1 });
    expect(created.body.tasks.map((task) => [task.hostname, task.batch, task.state, task.from_version])).toEqual([
      ['ro-eu-west-1', 0, 'pending', '1.0.0'],
      ['ro-eu-west-2', 1, 'pending', '1.0.0'],
    ]);
    expect(created.body.approvals).toEqual([
      expect.objectContaining({ kind: 'plan', status: 'pending', options: ['approve', 'reject'], requested_by: 'alice', decision: null, decided_by: null }),
    ]);
    const pending = await as('viewer').ok<ApprovalView[]>('/api/v1/approvals?status=pending');
    expect(pending.map((a) => [a.rollout_id, a.kind])).toEqual([[id, 'plan']]);
    // The reconciler does not start an unapproved rollout.
    await new Promise((r) => setTimeout(r, 400));
    expect((await rollout(id)).tasks.map((task) => task.state)).toEqual(['pending', 'pending']);

    // Roles below approver are refused, and so is the creator; nothing changes.
    expectApiError(await as('viewer').post(`/api/v1/rollouts/${id}/approve`, {}), 403, 'FORBIDDEN');
    expectApiError(await as('operator').post(`/api/v1/rollouts/${id}/approve`, {}), 403, 'FORBIDDEN');
    const self = expectApiError(await as('alice').post(`/api/v1/rollouts/${id}/approve`, {}), 403, 'DISTINCT_APPROVER_REQUIRED');
    expect(self.details).toEqual({ creator: 'alice' });
    expect(await rollout(id)).toMatchObject({ status: 'awaiting_approval', batch_count: 2 });
    // A bad edit is refused with the field named, and changes nothing either.
    expectApiError(await as('bob').post(`/api/v1/rollouts/${id}/approve`, { set: ['strategy.batch.size=0'] }), 400, 'ROLLOUT_SPEC_INVALID');
    expectApiError(await as('bob').post(`/api/v1/rollouts/${id}/approve`, { set: ['target.version=2.0.1'] }), 400, 'ROLLOUT_EDIT_INVALID');
    expect(await rollout(id)).toMatchObject({ status: 'awaiting_approval', batch_count: 2 });
    expect((await as('viewer').ok<ApprovalView[]>(`/api/v1/approvals?rollout_id=${id}`))[0]?.status).toBe('pending');

    const approved = await as('bob').post<RolloutDetail>(`/api/v1/rollouts/${id}/approve`, { set: ['strategy.batch.size=2'] });
    expect(approved.status).toBe(200);
    expect(approved.body.status).toBe('running');
    expect(approved.body.batch_count).toBe(1);
    expect(approved.body.batches.map((b) => b.nodes.map((n) => n.hostname))).toEqual([['ro-eu-west-1', 'ro-eu-west-2']]);
    expect(approved.body.tasks.map((task) => [task.hostname, task.batch])).toEqual([
      ['ro-eu-west-1', 0],
      ['ro-eu-west-2', 0],
    ]);
    const [approval] = await as('viewer').ok<ApprovalView[]>(`/api/v1/approvals?rollout_id=${id}`);
    expect(approval).toMatchObject({ kind: 'plan', status: 'approved', decision: 'approve', decided_by: 'bob', edits: ['strategy.batch.size=2'] });
    expect(approval?.decided_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expectApiError(await as('bob').post(`/api/v1/rollouts/${id}/approve`, {}), 409, 'ROLLOUT_WRONG_STATUS');

    for (const host of ['ro-eu-west-1', 'ro-eu-west-2']) node(host).followDesiredComponents = true;
    const done = await waitStatus(id, 'completed');
    expect(done.counters).toMatchObject({ total: 2, done: 2, failed: 0 });
    const events = await eventsOf(id);
    expect(events.find((e) => e.kind === 'rollout.approved')).toMatchObject({ actor: 'bob', data: { edits: ['strategy.batch.size=2'] } });
    const kinds = events.map((e) => e.kind);
    for (const kind of ['rollout.created', 'rollout.approval_requested', 'rollout.approved', 'rollout.started', 'rollout.batch_started', 'rollout.node_started', 'rollout.node_completed', 'rollout.batch_completed', 'rollout.completed']) {
      expect(kinds).toContain(kind);
    }
    expect(kinds.filter((k) => k === 'rollout.node_completed')).toHaveLength(2);
    expect(kinds.indexOf('rollout.completed')).toBe(kinds.length - 1);
  });

  it('reports drift against the last completed rollout of each component', async () => {
    // ro-ap-south-2 and both eu-west nodes were upgraded by completed rollouts; the latest for web
    // targeted eu-west.
    const clean = await as('viewer').ok<{ drift: boolean; expected: Record<string, string>; nodes: unknown[] }>('/api/v1/drift');
    expect(clean).toEqual({ drift: false, expected: { web: '2.0.0' }, nodes: [] });

    const stray = node('ro-eu-west-1');
    stray.followDesiredComponents = false;
    stray.components = { ...stray.components, web: '1.0.0' };
    const drifted = await waitFor('drift to show', async () => {
      const report = await as('viewer').ok<{ drift: boolean; nodes: Record<string, unknown>[] }>('/api/v1/drift?component=web');
      return report.drift && report;
    });
    expect(drifted.nodes).toEqual([
      { node_id: stray.id, hostname: 'ro-eu-west-1', component: 'web', expected: '2.0.0', actual: '1.0.0', rollout_id: expect.any(String) },
    ]);
    expect(await as('viewer').ok('/api/v1/drift?component=node-agent')).toEqual({ drift: false, expected: {}, nodes: [] });

    stray.followDesiredComponents = true;
    await waitFor('drift to clear', async () => (await as('viewer').ok<{ drift: boolean }>('/api/v1/drift')).drift === false);
  });

  it('rejects a plan: the rollout ends rejected, its nodes are free again', async () => {
    const body = spec('ap-rejected', { selector: { hostnames: ['ro-ap-south-1'] }, approval: { required: true } });
    const created = await as('alice').post<RolloutDetail>('/api/v1/rollouts', body);
    expect(created.status).toBe(201);
    const busy = await as('operator').post<PlanResponse>('/api/v1/rollouts/plan', { ...body, name: 'ap-other' });
    expect(busy.body.preflight.checks.find((c) => c.id === 'active-rollout')).toMatchObject({ status: 'fail', objects: ['ro-ap-south-1'] });
    // A second active rollout with the same name is refused.
    expectApiError(await as('alice').post('/api/v1/rollouts?override=active-rollout', body), 409, 'ROLLOUT_EXISTS');

    expectApiError(await as('viewer').post(`/api/v1/rollouts/${created.body.id}/reject`, { reason: 'no' }), 403, 'FORBIDDEN');
    expectApiError(await as('bob').post(`/api/v1/rollouts/${created.body.id}/reject`, {}), 400, 'VALIDATION_FAILED');
    const rejected = await as('bob').post<RolloutDetail>(`/api/v1/rollouts/${created.body.id}/reject`, { reason: 'not during the sale' });
    expect(rejected.status).toBe(200);
    expect(rejected.body.status).toBe('rejected');
    expect(rejected.body.tasks.map((task) => task.state)).toEqual(['skipped']);
    // A skipped task always says why (DESIGN.md §8.8).
    expect(rejected.body.tasks.map((task) => (task as unknown as { last_error: string }).last_error)).toEqual(['rollout rejected by bob: not during the sale']);
    expect(rejected.body.approvals).toEqual([expect.objectContaining({ status: 'rejected', decision: 'reject', decided_by: 'bob', reason: 'not during the sale' })]);
    expect((await eventsOf(created.body.id)).map((e) => e.kind)).toEqual(['rollout.created', 'rollout.approval_requested', 'rollout.rejected']);
    expectApiError(await as('bob').post(`/api/v1/rollouts/${created.body.id}/approve`, {}), 409, 'ROLLOUT_WRONG_STATUS');

    const free = await as('operator').post<PlanResponse>('/api/v1/rollouts/plan', { ...body, name: 'ap-other' });
    expect(free.body.preflight.checks.find((c) => c.id === 'active-rollout')?.status).toBe('pass');
    expect(await as('viewer').ok<ApprovalView[]>('/api/v1/approvals?status=pending')).toEqual([]);
  });

  it('pauses, resumes and aborts by the status rules; abort finishes the node in flight and starts no other', async () => {
    const created = await as('operator').post<RolloutDetail>('/api/v1/rollouts', spec('us-paused', { selector: { regions: ['us-east'] } }));
    expect(created.status).toBe(201);
    const id = created.body.id;
    // The first node is installing and stays there: its agent does not report the version yet.
    await waitFor('the first node installing', async () => (await rollout(id)).tasks.find((task) => task.hostname === 'ro-us-east-1')?.state === 'installing');

    const wrong = (response: Parameters<typeof expectApiError>[0], status: string, allowed: string[]) => {
      const error = expectApiError(response, 409, 'ROLLOUT_WRONG_STATUS');
      expect(error.details).toMatchObject({ id, status, allowed });
    };
    wrong(await as('operator').post(`/api/v1/rollouts/${id}/resume`), 'running', ['paused']);
    wrong(await as('bob').post(`/api/v1/rollouts/${id}/decide`, { decision: 'continue' }), 'running', ['awaiting_decision']);
    expectApiError(await as('viewer').post(`/api/v1/rollouts/${id}/pause`), 403, 'FORBIDDEN');

    expect((await as('operator').post<RolloutDetail>(`/api/v1/rollouts/${id}/pause`)).body.status).toBe('paused');
    wrong(await as('operator').post(`/api/v1/rollouts/${id}/pause`), 'paused', ['running', 'waiting_for_window']);
    expect((await as('operator').post<RolloutDetail>(`/api/v1/rollouts/${id}/resume`)).body.status).toBe('running');
    expect((await as('operator').post<RolloutDetail>(`/api/v1/rollouts/${id}/abort`)).body.status).toBe('aborting');
    wrong(await as('operator').post(`/api/v1/rollouts/${id}/abort`), 'aborting', ['awaiting_approval', 'running', 'paused', 'waiting_for_window', 'awaiting_decision']);
    wrong(await as('operator').post(`/api/v1/rollouts/${id}/pause`), 'aborting', ['running', 'waiting_for_window']);
    // Still aborting while the first node is in flight; the second never started.
    await new Promise((r) => setTimeout(r, 400));
    expect((await rollout(id)).tasks.map((task) => [task.hostname, task.state])).toEqual([
      ['ro-us-east-1', 'installing'],
      ['ro-us-east-2', 'skipped'],
    ]);
    expect((await rollout(id)).status).toBe('aborting');

    node('ro-us-east-1').followDesiredComponents = true;
    const aborted = await waitStatus(id, 'aborted');
    expect(aborted.tasks.map((task) => [task.hostname, task.state])).toEqual([
      ['ro-us-east-1', 'done'],
      ['ro-us-east-2', 'skipped'],
    ]);
    expect(node('ro-us-east-2').components.web).toBe('1.0.0');
    expect((await as('operator').get<{ version: string }[]>(`/api/v1/nodes/${node('ro-us-east-2').id}/components`)).body).toEqual({});
    const kinds = (await eventsOf(id)).map((e) => e.kind);
    expect(kinds.filter((k) => ['rollout.paused', 'rollout.resumed', 'rollout.abort_requested', 'rollout.aborted'].includes(k))).toEqual([
      'rollout.paused',
      'rollout.resumed',
      'rollout.abort_requested',
      'rollout.aborted',
    ]);
    expect(kinds.filter((k) => k === 'rollout.node_started')).toHaveLength(1);
    wrong(await as('operator').post(`/api/v1/rollouts/${id}/resume`), 'aborted', ['paused']);
    expectApiError(await as('viewer').get('/api/v1/rollouts/no-such-rollout'), 404, 'ROLLOUT_NOT_FOUND');
  });

  it('lists approvals across rollouts, filtered by status and rollout', async () => {
    const all = await as('viewer').ok<ApprovalView[]>('/api/v1/approvals');
    expect(all.map((a) => [a.kind, a.status]).sort()).toEqual([
      ['plan', 'approved'],
      ['plan', 'rejected'],
    ]);
    for (const a of all) {
      expect(Object.keys(a).sort()).toEqual(
        ['created_at', 'decided_at', 'decided_by', 'decision', 'edits', 'id', 'kind', 'options', 'reason', 'requested_by', 'rollout_id', 'status'].sort(),
      );
    }
    expect((await as('viewer').ok<ApprovalView[]>('/api/v1/approvals?status=approved')).map((a) => a.decided_by)).toEqual(['bob']);
    expectApiError(await as('viewer').get('/api/v1/approvals?status=maybe'), 400, 'VALIDATION_FAILED');
  });

  it('waits at a region gate for a person: approve goes on into the next region, reject stops the rollout there', async () => {
    await publish('3.0.0', { bless: true });
    await publish('4.0.0', { bless: true });
    const gated = (name: string, version: string) => ({
      ...spec(name, { selector: { regions: ['eu-west', 'ap-south'] } }),
      target: { component: 'web', version },
      strategy: { order: 'region-by-region', batch: { size: 2 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' }, gateBetweenRegions: true },
    });
    const hosts = ['ro-eu-west-1', 'ro-eu-west-2', 'ro-ap-south-1', 'ro-ap-south-2'];
    for (const h of hosts) node(h).followDesiredComponents = true;
    try {
      const created = await as('operator').post<RolloutDetail>('/api/v1/rollouts', gated('gated', '3.0.0'));
      expect(created.status).toBe(201);
      const id = created.body.id;
      const atGate = await waitStatus(id, 'awaiting_approval');
      const firstRegion = atGate.tasks.filter((t) => t.state === 'done').map((t) => t.region);
      expect(new Set(firstRegion).size).toBe(1);
      expect(atGate.tasks.filter((t) => t.state === 'pending')).toHaveLength(2);
      const [gate] = await as('viewer').ok<ApprovalView[]>(`/api/v1/approvals?status=pending&rollout_id=${id}`);
      expect(gate).toMatchObject({ kind: 'gate', options: ['approve', 'reject'] });
      expect(gate?.reason).toMatch(/2 done, 0 failed; next: /);
      // Still at the gate a while later: nothing of the next region starts by itself.
      await new Promise((r) => setTimeout(r, 500));
      expect((await rollout(id)).tasks.filter((t) => t.state === 'pending')).toHaveLength(2);
      expectApiError(await as('bob').post(`/api/v1/rollouts/${id}/approve`, { set: ['strategy.batch.size=1'] }), 400, 'ROLLOUT_EDIT_INVALID');
      expect((await as('bob').post<RolloutDetail>(`/api/v1/rollouts/${id}/approve`)).body.status).toBe('running');
      const done = await waitStatus(id, 'completed');
      expect(done.tasks.every((t) => t.state === 'done')).toBe(true);
      const kinds = (await eventsOf(id)).map((e) => e.kind);
      expect(kinds.filter((k) => k === 'rollout.gate_reached')).toHaveLength(1);
      expect(kinds.indexOf('rollout.gate_reached')).toBeLessThan(kinds.lastIndexOf('rollout.batch_started'));

      const second = (await as('operator').post<RolloutDetail>('/api/v1/rollouts', gated('gated-stop', '4.0.0'))).body.id;
      await waitStatus(second, 'awaiting_approval');
      const stopped = (await as('bob').post<RolloutDetail>(`/api/v1/rollouts/${second}/reject`, { reason: 'errors went up in the first region' })).body;
      expect(stopped.status).toBe('aborted');
      const skipped = stopped.tasks.filter((t) => t.state === 'skipped');
      expect(skipped).toHaveLength(2);
      for (const t of skipped) expect(node(t.hostname).components.web).toBe('3.0.0');
      expect((await as('viewer').ok<ApprovalView[]>(`/api/v1/approvals?rollout_id=${second}`)).find((a) => a.kind === 'gate')).toMatchObject({ status: 'rejected', decided_by: 'bob' });
    } finally {
      for (const h of hosts) node(h).followDesiredComponents = false;
    }
  });

  it('enforces the compatibility matrix in preflight once it is set', async () => {
    const body = spec('compat-blocked', { selector: { hostnames: ['ro-us-east-2'] } });
    expect((await as('operator').post<PlanResponse>('/api/v1/rollouts/plan', body)).body.preflight.checks.find((c) => c.id === 'compatibility')?.status).toBe('pass');
    const rules = [{ component: 'web', range: '>=2.0.0', requires_component: 'node-agent', requires_range: '>=2.0.0' }];
    expectApiError(await as('admin').request('PUT', '/api/v1/compat', { rules: [{ ...rules[0], range: 'not a range' }] }), 400, 'VALIDATION_FAILED');
    expectApiError(await as('viewer').request('PUT', '/api/v1/compat', { rules }), 403, 'FORBIDDEN');
    const put = await as('admin').request<{ rules: unknown[] }>('PUT', '/api/v1/compat', { rules });
    expect(put.status).toBe(200);
    expect(put.body.rules).toEqual(rules);
    expect(await as('viewer').ok('/api/v1/compat')).toEqual({ rules });

    const planned = await as('operator').post<PlanResponse>('/api/v1/rollouts/plan', body);
    const check = planned.body.preflight.checks.find((c) => c.id === 'compatibility');
    expect(check).toMatchObject({ status: 'fail', objects: ['node-agent 1.0.0'] });
    expect(check?.message).toContain('web >=2.0.0 requires node-agent >=2.0.0');
    const before = await count('rollouts');
    const refused = expectApiError(await as('operator').post('/api/v1/rollouts', body), 409, 'PREFLIGHT_FAILED');
    expect(refused.details.failed).toEqual(['compatibility']);
    expect(await count('rollouts')).toBe(before);

    await as('admin').request('PUT', '/api/v1/compat', { rules: [] });
    expect((await as('operator').post<PlanResponse>('/api/v1/rollouts/plan', body)).body.preflight.blocked).toBe(false);
  });

  it('checks the matrix against every live operator replica and the schema, not only the replica that plans', async () => {
    const body = spec('compat-control-plane', { selector: { hostnames: ['ro-us-east-2'] } });
    // Another replica, live, on an older build (its row as the registry keeps it).
    await t.db.query(
      `INSERT INTO operator_replicas (id, hostname, region, url, version, knows_schema_version, ready, reason, leader, started_at, last_seen_at)
       VALUES ('older-replica', 'cp-old', 'us-east', 'http://127.0.0.1:1', '1.5.0', 1, true, 'ready', false, now(), now() + interval '1 hour')`,
    );
    const check = async () => (await as('operator').post<PlanResponse>('/api/v1/rollouts/plan', body)).body.preflight.checks.find((c) => c.id === 'compatibility');
    try {
      await as('admin').request('PUT', '/api/v1/compat', { rules: [{ component: 'web', range: '>=2.0.0', requires_component: 'operator', requires_range: '>=1.6.0' }] });
      const operators = await check();
      expect(operators?.status).toBe('fail');
      expect(operators?.objects).toContain('operator 1.5.0');
      await as('admin').request('PUT', '/api/v1/compat', { rules: [{ component: 'web', range: '>=2.0.0', requires_component: 'schema', requires_range: '>=999' }] });
      const schema = await check();
      expect(schema?.status).toBe('fail');
      expect(schema?.objects?.[0]).toMatch(/^schema \d+\.0\.0$/);
    } finally {
      await as('admin').request('PUT', '/api/v1/compat', { rules: [] });
      await t.db.query(`DELETE FROM operator_replicas WHERE id = 'older-replica'`);
    }
  });

  it('streams the event log as Server-Sent Events from ?after=', async () => {
    const logged = await as('viewer').ok<EventRow[]>('/api/v1/events?after=0&kind_prefix=rollout.created');
    expect(logged.length).toBeGreaterThanOrEqual(3);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 10_000);
    const received: { id: number; event: string; data: EventRow }[] = [];
    try {
      const response = await fetch(`${op.url}/api/v1/events/stream?after=0&kind_prefix=rollout.created`, {
        headers: { authorization: `Bearer ${TOKENS.viewer}` },
        signal: controller.signal,
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      while (received.length < logged.length) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
          if (fields.id) received.push({ id: Number(fields.id), event: fields.event as string, data: JSON.parse(fields.data as string) as EventRow });
        }
      }
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
    expect(received.map((r) => r.id)).toEqual(logged.map((e) => e.id));
    expect(received.every((r) => r.event === 'rollout.created' && r.data.kind === 'rollout.created' && r.data.id === r.id)).toBe(true);
    expect(received.map((r) => r.data.rollout_id)).toEqual(logged.map((e) => e.rollout_id));
  });
});
