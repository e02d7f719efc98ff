// `drydock delete node` (DELETE /api/v1/nodes/:id) decommissions a drained node only: against a
// real operator with tokens on, refusals change nothing, and a deleted node's agent is refused.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  admin: 'admin-token-0123456789',
  agent: 'agent-token-0123456789',
} as const;
const WORKLOAD = { command: 'demo-app', args: ['--port', '$PORT'] };

describe(`nodes decommissioned on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let anonymous: ApiClient;
  const as = (who: keyof typeof TOKENS) => anonymous.withToken(TOKENS[who]);
  const nodes = new Map<string, FakeNode>();
  const node = (hostname: string) => nodes.get(hostname) as FakeNode;
  const del = (id: string, who: keyof typeof TOKENS = 'operator') => as(who).request<{ id: string; hostname: string; result: string }>('DELETE', `/api/v1/nodes/${id}`);
  /** Every table but the ones refreshed on timers (leases, replicas) and heartbeat columns: equal digests, same world. */
  const digest = async () => {
    const tables = await t.db.query<{ tablename: string }>(
      `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT IN ('leases', 'operator_replicas', 'nodes', 'instances') ORDER BY tablename`,
    );
    const parts = tables.map(({ tablename }) => `SELECT '${tablename}' AS t, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS d FROM "${tablename}" x`);
    const rows = await t.db.query<{ t: string; d: string }>(parts.join(' UNION ALL '));
    return JSON.stringify([
      rows,
      await t.db.query('SELECT id, hostname, status, cordoned, credential_hash FROM nodes ORDER BY id'),
      await t.db.query('SELECT id, node_id, desired FROM instances ORDER BY id'),
    ]);
  };

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-decommission-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-bot`, token, role })) }));
    op = await startTestOperator(t.db, { tokensFile, heartbeatGraceMs: 60_000 });
    anonymous = new ApiClient(op.url);
    for (const hostname of ['nd-1', 'nd-2', 'nd-3', 'nd-4']) {
      const fake = await FakeNode.register(as('agent'), { hostname, max_instances: 4 });
      fake.components = { 'node-agent': '1.0.0', web: '1.0.0' };
      fake.followDesiredInstances = true;
      fake.startHeartbeats(100);
      nodes.set(hostname, fake);
    }
    expect((await as('operator').request('PUT', '/api/v1/deployments/app', { name: 'app', replicas: 4, workload: WORKLOAD })).status).toBe(201);
    await waitFor('four instances, one per node', async () => {
      const all = await as('viewer').ok<InstanceView[]>('/api/v1/instances');
      return all.filter((i) => i.published).length === 4 && new Set(all.map((i) => i.node_id)).size === 4;
    });
  });
  afterAll(async () => {
    for (const fake of nodes.values()) await fake.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a node that is not cordoned (409 NODE_NOT_DRAINED) and changes nothing', async () => {
    await node('nd-1').stopHeartbeats();
    const before = await digest();
    const error = expectApiError(await del('nd-1'), 409, 'NODE_NOT_DRAINED');
    expect(error.details).toMatchObject({ hostname: 'nd-1', reason: 'not_cordoned', active_instances: 1 });
    expectApiError(await del(node('nd-1').id), 409, 'NODE_NOT_DRAINED');
    expect(await digest()).toBe(before);
    node('nd-1').startHeartbeats(100);
  });

  it('refuses a cordoned node that still hosts instances: nothing changes, its instance keeps running', async () => {
    expect((await as('operator').post('/api/v1/nodes/nd-1/cordon')).status).toBe(200);
    await node('nd-1').stopHeartbeats();
    const before = await digest();
    const error = expectApiError(await del('nd-1'), 409, 'NODE_NOT_DRAINED');
    expect(error.details).toMatchObject({ reason: 'hosts_instances', active_instances: 1 });
    expect(error.message).toContain('drydock node drain nd-1 --wait');
    expect(await digest()).toBe(before);
    const hosted = await as('viewer').ok<InstanceView[]>('/api/v1/nodes/nd-1/instances');
    expect(hosted).toEqual([expect.objectContaining({ desired: 'running', published: true })]);
    // Its agent still works.
    expect((await node('nd-1').heartbeat()).node_id).toBe(node('nd-1').id);
    node('nd-1').startHeartbeats(100);
  });

  it('answers 404 NODE_NOT_FOUND for names it does not know, 400 for malformed ones; 403 for viewers; nothing changes', async () => {
    const before = await digest();
    for (const name of ['no-such-node', 'ND-1', 'nd-1%20']) expectApiError(await del(name), 404, 'NODE_NOT_FOUND');
    expectApiError(await del('%00'), 400, 'VALIDATION_FAILED');
    expectApiError(await del('nd-1', 'viewer'), 403, 'FORBIDDEN');
    expectApiError(await del('nd-1', 'agent'), 403, 'FORBIDDEN');
    expectApiError(await anonymous.request('DELETE', '/api/v1/nodes/nd-1'), 401, 'UNAUTHENTICATED');
    expect(await digest()).toBe(before);
  });

  it('refuses a node in an unfinished rollout (409 NODE_IN_ROLLOUT) until the rollout ends', async () => {
    const keys = generateSigningKeyPair();
    const bytes = randomBytes(32);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const query = new URLSearchParams({
      component: 'web',
      version: '2.0.0',
      kind: 'binary',
      signature: signArtifact(keys.privatePem, { component: 'web', version: '2.0.0', kind: 'binary', sha256 }),
      public_key: keys.publicPem,
    });
    const published = await fetch(`${op.url}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKENS.admin}` },
      body: new Uint8Array(bytes),
    });
    expect(published.status).toBe(201);
    const artifact = (await published.json()) as { id: string };
    expect((await as('admin').post(`/api/v1/artifacts/${artifact.id}/bless`)).status).toBe(200);
    const rollout = await as('operator').post<{ id: string; status: string }>('/api/v1/rollouts?override=rollback-version', {
      name: 'web-on-nd-4',
      target: { component: 'web', version: '2.0.0' },
      selector: { hostnames: ['nd-4'] },
      strategy: { batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' } },
      approval: { required: true },
    });
    expect(rollout.status, rollout.text).toBe(201);
    expect(rollout.body.status).toBe('awaiting_approval');

    await node('nd-4').stopHeartbeats();
    const before = await digest();
    const error = expectApiError(await del('nd-4'), 409, 'NODE_IN_ROLLOUT');
    expect(error.details).toMatchObject({ hostname: 'nd-4', rollouts: [rollout.body.id] });
    expect(await digest()).toBe(before);
    node('nd-4').startHeartbeats(100);

    expect((await as('operator').post(`/api/v1/rollouts/${rollout.body.id}/abort`)).status).toBe(200);
    await waitFor('the rollout to end', async () => {
      const r = await as('viewer').ok<{ status: string }>(`/api/v1/rollouts/${rollout.body.id}`);
      return ['aborted', 'rejected'].includes(r.status);
    });
    // No longer the rollout's: now only "not drained" stands in the way.
    expectApiError(await del('nd-4'), 409, 'NODE_NOT_DRAINED');
  });

  it('deletes a drained node: it leaves the fleet, its credential is void, its agent is refused with NODE_DECOMMISSIONED', async () => {
    const target = node('nd-1');
    expect((await as('operator').post('/api/v1/nodes/nd-1/drain', {})).status).toBe(202);
    await waitFor('the drain to complete', async () => (await as('viewer').ok<NodeView>('/api/v1/nodes/nd-1')).drain?.state === 'completed');
    await waitFor('no instance row left on nd-1', async () => (await as('viewer').ok<InstanceView[]>('/api/v1/nodes/nd-1/instances')).length === 0);
    await target.stopHeartbeats();

    const deleted = await del('nd-1');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ id: target.id, hostname: 'nd-1', result: 'deleted' });

    expectApiError(await as('viewer').get('/api/v1/nodes/nd-1'), 404, 'NODE_NOT_FOUND');
    expect((await as('viewer').ok<NodeView[]>('/api/v1/nodes')).map((n) => n.hostname).sort()).toEqual(['nd-2', 'nd-3', 'nd-4']);
    expect(await t.db.query('SELECT id FROM nodes WHERE id = $1', [target.id])).toEqual([]);
    expect(await t.db.query('SELECT id, hostname, decommissioned_by FROM decommissioned_nodes')).toEqual([{ id: target.id, hostname: 'nd-1', decommissioned_by: 'operator-bot' }]);
    const [event] = await as('viewer').ok<{ kind: string; node_id: string; actor: string; data: unknown }[]>(`/api/v1/events?after=0&kind_prefix=node.decommissioned`);
    expect(event).toMatchObject({ kind: 'node.decommissioned', node_id: target.id, actor: 'operator-bot', data: { hostname: 'nd-1', region: 'us-east' } });

    // Its agent, with its once-valid credential: every gateway call is refused with the code.
    await expect(target.heartbeat()).rejects.toThrow(/410.*NODE_DECOMMISSIONED/);
    const poll = await as('agent').get(`/api/v1/agent/desired?node_id=${target.id}&after=0&wait=1`, { headers: { 'x-drydock-node-credential': target.credential } });
    expectApiError(poll, 410, 'NODE_DECOMMISSIONED');
    // And it cannot register the node again under its id.
    const again = await as('agent').post(
      '/api/v1/agent/register',
      { hostname: 'nd-1', node_id: target.id, region: 'us-east', role: 'worker', max_instances: 4, agent_version: 'test', protocol_version: 1 },
      { headers: { 'x-drydock-node-credential': target.credential } },
    );
    expectApiError(again, 410, 'NODE_DECOMMISSIONED');
    expect(await t.db.query('SELECT id FROM nodes WHERE hostname = $1', ['nd-1'])).toEqual([]);
    // The deployment kept its replicas elsewhere.
    const instances = await as('viewer').ok<InstanceView[]>('/api/v1/instances?deployment=app');
    expect(instances.filter((i) => i.desired === 'running')).toHaveLength(4);
    expect(instances.some((i) => i.node_id === target.id)).toBe(false);
  });
});
