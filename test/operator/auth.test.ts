import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { NodeView } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  approver: 'approver-token-0123456789',
  admin: 'admin-token-0123456789',
  agent: 'agent-token-0123456789',
} as const;

describe(`operator authentication and roles on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let anonymous: ApiClient;
  const as = (role: keyof typeof TOKENS) => anonymous.withToken(TOKENS[role]);
  let node: FakeNode;

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-tokens-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-bot`, token, role })) }));
    op = await startTestOperator(t.db, { tokensFile });
    anonymous = new ApiClient(op.url);
    node = await FakeNode.register(as('agent'), { hostname: 'auth-1' });
    node.startHeartbeats();
  });
  afterAll(async () => {
    await node?.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('401 without a token, with an unknown one, or with a malformed header', async () => {
    for (const response of [
      await anonymous.get('/api/v1/nodes'),
      await anonymous.get('/api/v1/nodes', { token: 'not-a-known-token-at-all' }),
      await anonymous.post(`/api/v1/nodes/${node.id}/cordon`),
      await anonymous.post('/api/v1/agent/heartbeat', { node_id: node.id }),
    ]) {
      const error = expectApiError(response, 401, 'UNAUTHENTICATED');
      expect(error.message).toMatch(/Authorization: Bearer/);
    }
    const basic = await fetch(`${op.url}/api/v1/nodes`, { headers: { authorization: `Basic ${TOKENS.admin}` } });
    expect(basic.status).toBe(401);
  });

  it('keeps /health, /metrics and /openapi.json open', async () => {
    expect((await anonymous.get<{ status: string }>('/health')).body.status).toBe('healthy');
    expect((await anonymous.get<{ status: string }>('/health/ready')).body.status).toBe('ready');
    expect((await anonymous.get('/health/live')).status).toBe(200);
    const metrics = await anonymous.get<string>('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('drydock_heartbeats_received_total');
    expect((await anonymous.get('/openapi.json')).status).toBe(200);
  });

  it('lets a viewer read but not act: 403 on drain, and the node stays as it was', async () => {
    const list = await as('viewer').get<NodeView[]>('/api/v1/nodes');
    expect(list.status).toBe(200);
    expect(list.body.map((n) => n.id)).toEqual([node.id]);

    const error = expectApiError(await as('viewer').post(`/api/v1/nodes/${node.id}/drain`, {}), 403, 'FORBIDDEN');
    expect(error.details).toEqual({ needed: 'operator', role: 'viewer' });
    expectApiError(await as('viewer').post('/api/v1/deployments', { name: 'nope', replicas: 1, workload: { command: 'x' } }), 403, 'FORBIDDEN');

    expect(await as('viewer').get<NodeView>(`/api/v1/nodes/${node.id}`).then((r) => r.body)).toMatchObject({
      status: 'ready',
      draining: false,
      cordoned: false,
      drain: null,
    });
    expect(await t.db.query('SELECT node_id FROM drains')).toEqual([]);
    expect(await t.db.query('SELECT name FROM deployments')).toEqual([]);
    expect(await t.db.query(`SELECT kind FROM events WHERE kind LIKE 'node.drain%' OR kind = 'node.cordoned'`)).toEqual([]);
  });

  it('lets an operator act, and records the token name as the actor', async () => {
    const cordoned = await as('operator').post<NodeView>(`/api/v1/nodes/${node.id}/cordon`);
    expect(cordoned.status).toBe(200);
    expect(cordoned.body).toMatchObject({ cordoned: true, status: 'cordoned' });
    const drained = await as('operator').post<NodeView>(`/api/v1/nodes/${node.id}/drain`, {});
    expect(drained.status).toBe(202);
    expect(drained.body).toMatchObject({ draining: true, status: 'draining' });
    // Nothing runs there, so the drain finishes at once.
    await waitFor('the drain to complete', async () => (await as('viewer').get<NodeView>(`/api/v1/nodes/${node.id}`)).body.drain?.state === 'completed');
    const actors = await t.db.query<{ kind: string; actor: string }>(
      `SELECT kind, actor FROM events WHERE kind IN ('node.cordoned', 'node.drain_started') ORDER BY id`,
    );
    expect(actors).toEqual([
      { kind: 'node.cordoned', actor: 'operator-bot' },
      { kind: 'node.drain_started', actor: 'operator-bot' },
    ]);
    // Higher roles include the lower ones.
    expect((await as('approver').post<NodeView>(`/api/v1/nodes/${node.id}/enable`)).status).toBe(200);
    expect((await as('admin').get('/api/v1/nodes')).status).toBe(200);
  });

  it('keeps agents on the agent gateway and people off it (403 both ways)', async () => {
    const heartbeat = { node_id: node.id, agent_version: 'test', protocol_version: 1, components: {}, instances: [], generation: 0 };
    const credential = { headers: { 'x-drydock-node-credential': node.credential } };
    expect((await as('agent').post('/api/v1/agent/heartbeat', heartbeat, credential)).status).toBe(200);

    for (const response of [
      await as('agent').get('/api/v1/nodes'),
      await as('agent').post(`/api/v1/nodes/${node.id}/drain`, {}),
      await as('agent').get('/api/v1/events'),
    ]) {
      expect(expectApiError(response, 403, 'FORBIDDEN').details).toMatchObject({ role: 'agent' });
    }
    for (const role of ['viewer', 'operator', 'approver'] as const) {
      const response = await as(role).post('/api/v1/agent/heartbeat', heartbeat);
      expect(expectApiError(response, 403, 'FORBIDDEN').details).toEqual({ needed: 'agent', role });
    }
    const register = await as('operator').post('/api/v1/agent/register', {
      hostname: 'sneaky-1',
      region: 'us-east',
      role: 'worker',
      max_instances: 1,
      agent_version: 'test',
      protocol_version: 1,
    });
    expectApiError(register, 403, 'FORBIDDEN');
    expect(await t.db.query(`SELECT id FROM nodes WHERE hostname = 'sneaky-1'`)).toEqual([]);
    expect(node.lastError).toBeUndefined();
  });

  it('lets an agent report only for its own node: another node credential, or none, is 403 and changes nothing', async () => {
    const other = await FakeNode.register(as('agent'), { hostname: 'auth-2' });
    // The real node keeps heartbeating in the background; what a forged report would change is its agent_version.
    const before = await t.db.query(`SELECT agent_version FROM nodes WHERE id = $1`, [node.id]);
    const forged = { node_id: node.id, agent_version: 'forged', protocol_version: 1, components: {}, instances: [], generation: 0 };
    const attempts: Record<string, string>[] = [{ 'x-drydock-node-credential': other.credential }, {}, { 'x-drydock-node-credential': 'x'.repeat(43) }];
    for (const headers of attempts) {
      expectApiError(await as('agent').post('/api/v1/agent/heartbeat', forged, { headers }), 403, 'NODE_CREDENTIAL_INVALID');
      expectApiError(await as('agent').get(`/api/v1/agent/desired?node_id=${node.id}&wait=0`, { headers }), 403, 'NODE_CREDENTIAL_INVALID');
    }
    expect(await t.db.query(`SELECT agent_version FROM nodes WHERE id = $1`, [node.id])).toEqual(before);
    const own = await as('agent').get(`/api/v1/agent/desired?node_id=${other.id}&wait=0`, { headers: { 'x-drydock-node-credential': other.credential } });
    expect(own.status).toBe(200);
    // The database keeps only a digest of the credential.
    const [row] = await t.db.query<{ credential_hash: string }>(`SELECT credential_hash FROM nodes WHERE id = $1`, [other.id]);
    expect(row?.credential_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row?.credential_hash).not.toContain(other.credential);
  });
});

describe(`operator start-up safety on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-tokens-'));
  });
  afterAll(async () => {
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to listen beyond loopback without a tokens file', async () => {
    await expect(startTestOperator(t.db, { listen: '0.0.0.0:0' })).rejects.toThrow(/--tokens/);
    await expect(startTestOperator(t.db, { listen: '10.0.0.1:0' })).rejects.toThrow(/without authentication/);
  });

  it('starts beyond loopback with a tokens file, and then requires a token', async () => {
    const tokensFile = join(dir, 'ok.yaml');
    // The bare list form of the file is accepted too.
    writeFileSync(tokensFile, stringify([{ name: 'ops', token: 'a-long-enough-token-1234', role: 'operator' }]));
    const op = await startTestOperator(t.db, { listen: '0.0.0.0:0', tokensFile });
    try {
      const port = new URL(op.url).port;
      const api = new ApiClient(`http://127.0.0.1:${port}`);
      expect((await api.get('/api/v1/nodes')).status).toBe(401);
      expect((await api.get('/api/v1/nodes', { token: 'a-long-enough-token-1234' })).status).toBe(200);
    } finally {
      await op.close();
    }
  });

  it('refuses a tokens file it cannot trust, saying what is wrong', async () => {
    const short = join(dir, 'short.yaml');
    writeFileSync(short, stringify({ tokens: [{ name: 'ops', token: 'short', role: 'operator' }] }));
    await expect(startTestOperator(t.db, { tokensFile: short })).rejects.toThrow(/at least 16 characters/);
    const badRole = join(dir, 'role.yaml');
    writeFileSync(badRole, stringify({ tokens: [{ name: 'ops', token: 'a-long-enough-token-1234', role: 'root' }] }));
    await expect(startTestOperator(t.db, { tokensFile: badRole })).rejects.toThrow(/invalid at tokens\.0\.role: Invalid option/);
    const bareList = join(dir, 'bare.yaml');
    writeFileSync(bareList, stringify([{ name: 'ops', token: 'a-long-enough-token-1234' }]));
    await expect(startTestOperator(t.db, { tokensFile: bareList })).rejects.toThrow(/invalid at 0\.role/);
    const twice = join(dir, 'twice.yaml');
    writeFileSync(twice, stringify([
      { name: 'ops', token: 'a-long-enough-token-1234', role: 'operator' },
      { name: 'ops', token: 'another-long-token-5678', role: 'viewer' },
    ]));
    await expect(startTestOperator(t.db, { tokensFile: twice })).rejects.toThrow(/name ops appears twice/);
    await expect(startTestOperator(t.db, { tokensFile: join(dir, 'missing.yaml') })).rejects.toThrow(/cannot read tokens file/);
  });
});
