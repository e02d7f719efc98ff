import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { ArtifactView } from '../../src/store/artifacts.js';
import type { EventRow } from '../../src/store/events.js';
import type { QuarantineView } from '../../src/store/quarantine.js';
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

interface Check {
  id: string;
  status: string;
  message: string;
  objects: string[];
  overridden?: boolean;
}
interface RolloutDetail {
  id: string;
  status: string;
  preflight: { checks: Check[] };
  tasks: { hostname: string; state: string }[];
}

function spec(name: string, hostnames: string[]) {
  return {
    name,
    target: { component: 'web', version: '2.0.0' },
    selector: { hostnames },
    strategy: { batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' }, circuitBreaker: { maxConsecutiveFailures: 1 } },
  };
}

describe(`quarantine of versions the circuit breaker rolled back, on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let anonymous: ApiClient;
  const as = (who: keyof typeof TOKENS) => anonymous.withToken(TOKENS[who]);
  const nodes = new Map<string, FakeNode>();
  const keys = generateSigningKeyPair();

  async function publish(version: string, bless: boolean): Promise<void> {
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
    if (bless) expect((await as('admin').post(`/api/v1/artifacts/${artifact.id}/bless`)).status).toBe(200);
  }
  const quarantineRows = () =>
    t.db.query<{ component: string; version: string; rollout_id: string; reason: string; quarantined_by: string; cleared_by: string | null; clear_reason: string | null }>(
      'SELECT component, version, rollout_id, reason, quarantined_by, cleared_by, clear_reason FROM quarantine ORDER BY id',
    );
  const count = async (table: 'rollouts' | 'events') => (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n;
  const eventsOfKind = (kind: string) => as('viewer').ok<EventRow[]>(`/api/v1/events?after=0&kind_prefix=${kind}`);
  const rollout = (id: string) => as('viewer').ok<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const waitStatus = (id: string, status: string) => waitFor(`rollout ${id} ${status}`, async () => (await rollout(id)).status === status);
  const quarantineCheck = (checks: Check[]) => checks.find((c) => c.id === 'quarantine');

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-quarantine-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([name, token]) => ({ name, token, role: ROLES[name as keyof typeof TOKENS] })) }));
    op = await startTestOperator(t.db, { tokensFile });
    anonymous = new ApiClient(op.url);
    for (const hostname of ['qa-1', 'qa-2', 'qa-3', 'qa-4']) {
      const fake = await FakeNode.register(as('agent'), { hostname, region: 'us-east', max_instances: 2 });
      fake.components = { web: '1.0.0' };
      await fake.heartbeat();
      fake.startHeartbeats(150);
      nodes.set(hostname, fake);
    }
    await publish('1.0.0', false);
    await publish('2.0.0', true);
  });

  afterAll(async () => {
    for (const fake of nodes.values()) await fake.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('quarantines a version the breaker rolled back; no plan or create passes it, not even with --override quarantine, until an approver clears it', async () => {
    // Before the drill: nothing is quarantined and the check passes.
    const before = await as('operator').post<{ preflight: { checks: Check[] } }>('/api/v1/rollouts/plan', spec('probe', ['qa-3']));
    expect(quarantineCheck(before.body.preflight.checks)).toMatchObject({ status: 'pass' });
    expect(await as('viewer').ok<QuarantineView[]>('/api/v1/quarantine')).toEqual([]);

    // The drill: the first node's install of 2.0.0 reverts (its health check failed), the breaker trips.
    const created = await as('operator').post<RolloutDetail>('/api/v1/rollouts', spec('web-bad', ['qa-1', 'qa-2']));
    expect(created.status).toBe(201);
    const id = created.body.id;
    await waitFor('qa-1 installing', async () => (await rollout(id)).tasks.find((task) => task.hostname === 'qa-1')?.state === 'installing');
    const qa1 = nodes.get('qa-1') as FakeNode;
    qa1.installs = [{ component: 'web', version: '2.0.0', previous_version: '1.0.0', phase: 'reverted', reason: 'health check failed', updated_at: new Date().toISOString() }];
    await waitStatus(id, 'awaiting_decision');
    // Tripping alone quarantines nothing: a human may still decide to continue.
    expect(await quarantineRows()).toEqual([]);
    // A rollout of the same version waiting for approval elsewhere passes preflight now...
    const held = await as('operator').post<RolloutDetail>('/api/v1/rollouts', { ...spec('web-held', ['qa-4']), approval: { required: true } });
    expect(held.status).toBe(201);

    expect((await as('bob').post(`/api/v1/rollouts/${id}/decide`, { decision: 'rollback' })).status).toBe(200);
    const rows = await quarantineRows();
    expect(rows).toEqual([
      { component: 'web', version: '2.0.0', rollout_id: id, reason: expect.stringMatching(/circuit breaker tripped .*bob decided to roll back/), quarantined_by: 'bob', cleared_by: null, clear_reason: null },
    ]);
    const quarantined = await eventsOfKind('artifact.quarantined');
    expect(quarantined).toEqual([expect.objectContaining({ actor: 'bob', rollout_id: id, data: expect.objectContaining({ component: 'web', version: '2.0.0', rollout_id: id }) })]);
    await waitFor('the rollout to end', async () => ['rolled_back', 'failed'].includes((await rollout(id)).status));
    // ...but cannot be approved once its version is quarantined, with or without edits.
    for (const body of [{}, { set: ['strategy.batch.size=2'] }]) {
      const error = expectApiError(await as('alice').post(`/api/v1/rollouts/${held.body.id}/approve`, body), 409, 'VERSION_QUARANTINED');
      expect(error.details).toEqual({ component: 'web', version: '2.0.0', rollout_id: id });
    }
    expect((await rollout(held.body.id)).status).toBe('awaiting_approval');
    expect((await as('alice').post<RolloutDetail>(`/api/v1/rollouts/${held.body.id}/reject`, { reason: 'quarantined' })).body.status).toBe('rejected');

    // Artifact views say so.
    const artifacts = await as('viewer').ok<ArtifactView[]>('/api/v1/artifacts?component=web');
    expect(artifacts.map((a) => [a.version, a.quarantined])).toEqual([
      ['1.0.0', false],
      ['2.0.0', true],
    ]);
    const listed = await as('viewer').ok<QuarantineView[]>('/api/v1/quarantine?open=true');
    expect(listed).toEqual([expect.objectContaining({ component: 'web', version: '2.0.0', rollout_id: id, quarantined_by: 'bob', cleared_at: null })]);

    // Plan and create to it fail the quarantine check, which names the rollout; the override flag does not apply.
    const counts = { rollouts: await count('rollouts'), events: await count('events') };
    for (const query of ['', '?override=quarantine', '?override=quarantine,nodes-ready']) {
      const planned = await as('operator').post<{ preflight: { checks: Check[]; blocked: boolean } }>(`/api/v1/rollouts/plan${query}`, spec('again', ['qa-3']));
      expect(planned.status).toBe(200);
      expect(planned.body.preflight.blocked).toBe(true);
      const check = quarantineCheck(planned.body.preflight.checks);
      expect(check).toMatchObject({ status: 'fail', objects: [id] });
      expect(check?.overridden).toBeUndefined();
      expect(check?.message).toContain(`rollout ${id}`);
      const refused = expectApiError(await as('admin').post(`/api/v1/rollouts${query}`, spec('again', ['qa-3'])), 409, 'PREFLIGHT_FAILED');
      expect(refused.details.failed).toEqual(['quarantine']);
    }
    expect({ rollouts: await count('rollouts'), events: await count('events') }).toEqual(counts);

    // Only approvers clear, with a reason; refusals change nothing.
    const clear = '/api/v1/quarantine/web/2.0.0/clear';
    expectApiError(await as('viewer').post(clear, { reason: 'fixed' }), 403, 'FORBIDDEN');
    expectApiError(await as('operator').post(clear, { reason: 'fixed' }), 403, 'FORBIDDEN');
    expectApiError(await as('alice').post(clear, {}), 400, 'VALIDATION_FAILED');
    expectApiError(await as('alice').post(clear, { reason: '   ' }), 400, 'VALIDATION_FAILED');
    expectApiError(await as('alice').post('/api/v1/quarantine/web/1.0.0/clear', { reason: 'fixed' }), 404, 'QUARANTINE_NOT_FOUND');
    expectApiError(await as('alice').post('/api/v1/quarantine/web/2.0.0%00/clear', { reason: 'fixed' }), 400, 'VALIDATION_FAILED');
    expect((await quarantineRows())[0]).toMatchObject({ cleared_by: null });
    expect({ rollouts: await count('rollouts'), events: await count('events') }).toEqual(counts);

    const cleared = await as('alice').post<QuarantineView>(clear, { reason: 'health check fixed in the agent' });
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ component: 'web', version: '2.0.0', cleared_by: 'alice', clear_reason: 'health check fixed in the agent', cleared_at: expect.any(String) });
    expect(await quarantineRows()).toEqual([expect.objectContaining({ quarantined_by: 'bob', cleared_by: 'alice', clear_reason: 'health check fixed in the agent' })]);
    expect(await eventsOfKind('artifact.quarantine_cleared')).toEqual([
      expect.objectContaining({ actor: 'alice', data: { component: 'web', version: '2.0.0', reason: 'health check fixed in the agent', rollout_id: id } }),
    ]);
    expectApiError(await as('alice').post(clear, { reason: 'again' }), 404, 'QUARANTINE_NOT_FOUND');
    // The row is kept for audit; nothing is open any more.
    expect(await as('viewer').ok<QuarantineView[]>('/api/v1/quarantine?open=true')).toEqual([]);
    expect((await as('viewer').ok<QuarantineView[]>('/api/v1/quarantine')).map((q) => q.cleared_by)).toEqual(['alice']);
    expect((await as('viewer').ok<ArtifactView[]>('/api/v1/artifacts?component=web')).map((a) => a.quarantined)).toEqual([false, false]);

    // Held for approval so that it touches no node; aborting it then ends it at once.
    const again = await as('operator').post<RolloutDetail>('/api/v1/rollouts', { ...spec('again', ['qa-3']), approval: { required: true } });
    expect(again.status).toBe(201);
    expect(quarantineCheck(again.body.preflight.checks)).toMatchObject({ status: 'pass' });
    expect((await as('operator').post<RolloutDetail>(`/api/v1/rollouts/${again.body.id}/abort`)).body.status).toBe('aborted');
  });

  it('quarantines too when the breaker is answered with `rollout rollback` instead of decide, and a continue quarantines nothing', async () => {
    const continued = await as('operator').post<RolloutDetail>('/api/v1/rollouts', spec('web-continue', ['qa-2']));
    expect(continued.status).toBe(201);
    const qa2 = nodes.get('qa-2') as FakeNode;
    await waitFor('qa-2 installing', async () => (await rollout(continued.body.id)).tasks.find((task) => task.hostname === 'qa-2')?.state === 'installing');
    qa2.installs = [{ component: 'web', version: '2.0.0', previous_version: '1.0.0', phase: 'reverted', reason: 'health check failed', updated_at: new Date().toISOString() }];
    await waitStatus(continued.body.id, 'awaiting_decision');
    expect((await as('bob').post(`/api/v1/rollouts/${continued.body.id}/decide`, { decision: 'continue' })).status).toBe(200);
    await waitFor('the continued rollout to end', async () => !['running', 'awaiting_decision'].includes((await rollout(continued.body.id)).status));
    expect(await as('viewer').ok<QuarantineView[]>('/api/v1/quarantine?open=true')).toEqual([]);

    const created = await as('operator').post<RolloutDetail>('/api/v1/rollouts', spec('web-bad-again', ['qa-3']));
    expect(created.status).toBe(201);
    const qa3 = nodes.get('qa-3') as FakeNode;
    await waitFor('qa-3 installing', async () => (await rollout(created.body.id)).tasks.find((task) => task.hostname === 'qa-3')?.state === 'installing');
    qa3.installs = [{ component: 'web', version: '2.0.0', previous_version: '1.0.0', phase: 'reverted', reason: 'health check failed', updated_at: new Date().toISOString() }];
    await waitStatus(created.body.id, 'awaiting_decision');
    expect((await as('operator').post(`/api/v1/rollouts/${created.body.id}/rollback`)).status).toBe(200);
    const open = await as('viewer').ok<QuarantineView[]>('/api/v1/quarantine?open=true');
    expect(open).toEqual([expect.objectContaining({ component: 'web', version: '2.0.0', rollout_id: created.body.id, quarantined_by: 'operator' })]);
    // The earlier, cleared row stays beside the new open one.
    expect((await quarantineRows()).map((r) => [r.rollout_id, r.cleared_by])).toEqual([
      [expect.any(String), 'alice'],
      [created.body.id, null],
    ]);
  });
});
