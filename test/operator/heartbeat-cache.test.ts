// The heartbeat hot path serves desired state from memory and checks credentials from memory
// (DESIGN.md §13). These tests try to make it serve something stale, against real operators
// over HTTP with tokens on: every change of desired state shows in the very next heartbeat
// reply, a changed credential is refused at once (on this replica and on another one sharing the
// database), and heartbeats that repeat themselves do not wake the fleet reconciler.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DesiredState } from '../../src/domain/protocol.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import { updateDeploymentReplicas } from '../../src/store/deployments.js';
import { stopInstances } from '../../src/store/instances.js';
import { bumpGenerations } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const TOKENS = { admin: 'admin-token-0123456789', agent: 'agent-token-0123456789' } as const;
const WORKLOAD = { command: 'sleep', args: ['3600'] };

describe(`heartbeat caches on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let dir: string;
  let op: RunningOperator;
  let other: RunningOperator;
  let admin: ApiClient;
  let agents: ApiClient;
  let otherAgents: ApiClient;
  let otherAdmin: ApiClient;
  const keys = generateSigningKeyPair();

  const heartbeatOf = (api: ApiClient, node: FakeNode, credential = node.credential, instances = [...node.actual.values()]) =>
    api.post<DesiredState>(
      '/api/v1/agent/heartbeat',
      { node_id: node.id, agent_version: 'test', protocol_version: 1, components: node.components, instances, generation: node.generation },
      { headers: { 'x-drydock-node-credential': credential } },
    );
  const reply = async (node: FakeNode, api = agents) => {
    const response = await heartbeatOf(api, node);
    expect(response.status).toBe(200);
    return response.body;
  };
  const nodeRow = async (id: string) => (await t.db.query('SELECT * FROM nodes WHERE id = $1', [id]))[0];

  async function publish(version: string): Promise<void> {
    const bytes = randomBytes(32);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const signature = signArtifact(keys.privatePem, { component: 'web', version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature, public_key: keys.publicPem });
    const response = await fetch(`${op.url}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKENS.admin}` },
      body: new Uint8Array(bytes),
    });
    expect(response.status).toBe(201);
  }

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-hb-cache-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-bot`, token, role })) }));
    // Passes only when woken (an hour between ticks), so a pass counts a wake; no node goes down on its own.
    const options = { tokensFile, reconcileIntervalMs: 3_600_000, heartbeatGraceMs: 3_600_000 };
    op = await startTestOperator(t.db, options);
    // A second replica on the same database (not leading: the first holds the lease).
    other = await startTestOperator(t.db, options);
    admin = new ApiClient(op.url, TOKENS.admin);
    agents = new ApiClient(op.url, TOKENS.agent);
    otherAgents = new ApiClient(other.url, TOKENS.agent);
    otherAdmin = new ApiClient(other.url, TOKENS.admin);
  });
  afterAll(async () => {
    await other?.close();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows every change of desired state in the very next heartbeat reply, and serves unchanged ones from memory', async () => {
    const node = await FakeNode.register(agents, { hostname: 'cache-1' });
    const first = await reply(node);
    expect(first).toMatchObject({ draining: false, instances: [], components: {} });
    const hits = op.ctx.desired.hits;
    const loads = op.ctx.desired.loads;
    expect(await reply(node)).toEqual(first);
    expect(await reply(node)).toEqual(first);
    // Nothing moved: both replies came from memory.
    expect({ hits: op.ctx.desired.hits - hits, loads: op.ctx.desired.loads - loads }).toEqual({ hits: 2, loads: 0 });

    // Set version (a person, through the API).
    await publish('1.0.0');
    expect((await admin.request('PUT', `/api/v1/nodes/${node.id}/components/web`, { version: '1.0.0' })).status).toBe(200);
    const versioned = await reply(node);
    expect(versioned.generation).toBeGreaterThan(first.generation);
    expect(versioned.components.web).toMatchObject({ version: '1.0.0' });

    // Drain (nothing to move yet): the flag is desired state too, and so is its end. Asked of
    // the replica that does not lead, so no reconciler pass ends the empty drain before we look.
    const drained = await otherAdmin.post(`/api/v1/nodes/${node.id}/drain`);
    expect(drained.status, drained.text).toBe(202);
    expect((await reply(node)).draining).toBe(true);
    expect((await admin.post(`/api/v1/nodes/${node.id}/enable`)).status).toBe(200);
    expect((await reply(node)).draining).toBe(false);

    // A deployment placed on the node by the reconciler.
    expect((await admin.post('/api/v1/deployments', { name: 'web', replicas: 1, workload: WORKLOAD })).status).toBe(201);
    const placed = await waitFor('the instance placed on cache-1', async () =>
      (await t.db.query<{ id: string; deployment_id: string }>('SELECT id, deployment_id FROM instances WHERE node_id = $1', [node.id]))[0],
    );
    expect((await reply(node)).instances.map((i) => i.id)).toEqual([placed?.id]);

    // Its workload changed (no API route scales a deployment yet: the store call the reconciler would make).
    const newWorkload = { command: 'sleep', args: ['7200'] };
    await t.db.transaction((tx) => updateDeploymentReplicas(tx, placed?.deployment_id as string, { name: 'web', replicas: 1, min_available: 0, workload: newWorkload }));
    expect((await reply(node)).instances[0]?.workload).toEqual(newWorkload);

    node.runHealthy(placed?.id as string, 31_001);
    await reply(node);

    // An instance asked to stop leaves the desired state once its agent reports it stopped: the
    // reply to that very heartbeat no longer lists it.
    const [running] = await t.db.query<{ id: string }>(`SELECT id FROM instances WHERE node_id = $1 AND desired = 'running'`, [node.id]);
    await t.db.transaction(async (tx) => {
      await stopInstances(tx, [{ instanceId: running?.id as string, restartOnEnable: false }]);
      await bumpGenerations(tx, [node.id]);
    });
    expect((await reply(node)).instances.find((i) => i.id === running?.id)).toMatchObject({ desired: 'stopped' });
    node.reportStopped(running?.id as string);
    expect((await reply(node)).instances.find((i) => i.id === running?.id)).toBeUndefined();
  });

  it('refuses a re-enrolled node\'s old credential at once, on this replica and on another, writing nothing', async () => {
    const node = await FakeNode.register(agents, { hostname: 'cache-2' });
    await reply(node);
    await reply(node, otherAgents);
    // Both replicas hold the credential in memory (long-polls and downloads would trust it).
    expect(op.ctx.credentials.knows(node.id, node.credential)).toBe(true);
    expect(other.ctx.credentials.knows(node.id, node.credential)).toBe(true);

    expect((await admin.post(`/api/v1/nodes/${node.id}/re-enroll`, { reason: 'test' })).status).toBe(200);
    const before = await nodeRow(node.id);
    // The replica that re-enrolled refuses at once, and forgot the old credential.
    expectApiError(await heartbeatOf(agents, node), 403, 'NODE_CREDENTIAL_INVALID');
    expect(op.ctx.credentials.knows(node.id, node.credential)).toBe(false);
    // The other replica still had the old digest in memory: the write itself checks it.
    expectApiError(await heartbeatOf(otherAgents, node, node.credential, [{ id: 'forged', status: 'running', healthy: true, pid: 1, port: 1 }]), 403, 'NODE_CREDENTIAL_INVALID');
    expect(await nodeRow(node.id)).toEqual(before);
    expect(other.ctx.credentials.knows(node.id, node.credential)).toBe(false);
    // Long-polls are refused too, on both.
    for (const api of [agents, otherAgents]) {
      expectApiError(await api.get(`/api/v1/agent/desired?node_id=${node.id}&after=0&wait=0`, { headers: { 'x-drydock-node-credential': node.credential } }), 403, 'NODE_CREDENTIAL_INVALID');
    }

    // Enrolled again with the agent token: the new credential works on both, the old one nowhere.
    const again = await agents.post<{ node_id: string; node_credential: string }>('/api/v1/agent/register', {
      hostname: 'cache-2', region: 'us-east', role: 'worker', max_instances: 4, agent_version: 'test', protocol_version: 1,
    });
    expect(again.status).toBe(200);
    expect(again.body.node_id).toBe(node.id);
    for (const api of [agents, otherAgents]) {
      expect((await heartbeatOf(api, node, again.body.node_credential)).status).toBe(200);
      expectApiError(await heartbeatOf(api, node), 403, 'NODE_CREDENTIAL_INVALID');
    }
    // A node nobody registered is still told so.
    expectApiError(
      await agents.post('/api/v1/agent/heartbeat', { node_id: 'nobody', agent_version: 'test', protocol_version: 1, components: {}, instances: [], generation: 0 }),
      404,
      'NODE_NOT_REGISTERED',
    );
  });

  it('a version set through another replica is in the next reply here', async () => {
    const node = await FakeNode.register(agents, { hostname: 'cache-3' });
    const first = await reply(node);
    await publish('2.0.0');
    const set = await otherAdmin.request('PUT', `/api/v1/nodes/${node.id}/components/web`, { version: '2.0.0' });
    expect(set.status, set.text).toBe(200);
    const next = await reply(node);
    expect(next.generation).toBeGreaterThan(first.generation);
    expect(next.components.web).toMatchObject({ version: '2.0.0' });
  });

  it('does not wake the fleet reconciler for heartbeats that change nothing, and does for one that does', async () => {
    const node = await FakeNode.register(agents, { hostname: 'cache-4' });
    await reply(node); // its first report changes its components: that one wakes the reconciler.
    const before = op.ctx.reconciler.passes;
    for (let i = 0; i < 20; i++) await reply(node);
    // At most the one pass still owed to the wakes above; waking on every write would be ~20.
    expect(op.ctx.reconciler.passes - before).toBeLessThanOrEqual(1);
    const settled = op.ctx.reconciler.passes;
    node.components = { ...node.components, extra: '1.0.0' };
    await reply(node);
    await waitFor('a pass after a heartbeat that changed the components', async () => op.ctx.reconciler.passes > settled);
  });
});
