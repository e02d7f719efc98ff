// Preflight fed by real data (issue 12, item 4): storage and backup systems report an
// instance's volume health and activity; volume-last-replica and backup-in-progress block a plan
// while a report says so, pass when cleared, and a report nobody renews expires by itself.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

interface Check {
  id: string;
  status: string;
  objects?: string[];
}

describe(`preflight volume and backup checks fed by reports on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let onTarget: InstanceView;
  let pf1: FakeNode;
  const keys = generateSigningKeyPair();
  const spec = {
    name: 'pf',
    target: { component: 'tool', version: '2.0.0' },
    selector: { hostnames: ['pf-1'] },
    strategy: { batch: { size: 1 }, drain: { mode: 'none' } },
  };
  const check = async (id: string) => {
    const response = await api.post<{ preflight: { checks: Check[] } }>('/api/v1/rollouts/plan', spec);
    expect(response.status).toBe(200);
    return response.body.preflight.checks.find((c) => c.id === id) as Check;
  };
  const rows = async () => (await t.db.query<{ volume: unknown; activity: unknown }>('SELECT volume, activity FROM instances ORDER BY id')).map((r) => JSON.stringify(r));

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    const nodes = [await FakeNode.register(api, { hostname: 'pf-1' }), await FakeNode.register(api, { hostname: 'pf-2' })];
    const bytes = randomBytes(64);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const query = new URLSearchParams({ component: 'tool', version: '2.0.0', kind: 'binary', signature: signArtifact(keys.privatePem, { component: 'tool', version: '2.0.0', kind: 'binary', sha256 }), public_key: keys.publicPem });
    const published = await fetch(`${op.url}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
    const artifact = (await published.json()) as { id: string };
    expect((await api.post(`/api/v1/artifacts/${artifact.id}/bless`)).status).toBe(200);
    expect((await api.post('/api/v1/deployments', { name: 'db', replicas: 2, workload: { command: 'sleep' } })).status).toBe(201);
    const placed = await waitFor('db placed', async () => {
      const list = await api.ok<InstanceView[]>('/api/v1/instances?deployment=db');
      return list.length === 2 && list;
    });
    let port = 43000;
    for (const i of placed) nodes.find((n) => n.id === i.node_id)?.runHealthy(i.id, ++port);
    for (const n of nodes) await n.heartbeat();
    onTarget = placed.find((i) => i.hostname === 'pf-1') as InstanceView;
    pf1 = nodes[0] as FakeNode;
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('volume-last-replica fails while a volume is down to its last healthy replica, passes when cleared', async () => {
    expect(await check('volume-last-replica')).toMatchObject({ status: 'pass' });
    const reported = await api.request<InstanceView>('PUT', `/api/v1/instances/${onTarget.id}/volume`, { replicas: 3, healthy_replicas: 1 });
    expect(reported.status).toBe(200);
    expect(reported.body.volume).toEqual({ replicas: 3, healthy_replicas: 1 });
    expect(reported.body.volume_expires_at).not.toBeNull();
    expect(reported.body.volume_source).toBe('api');
    expect(await check('volume-last-replica')).toMatchObject({ status: 'fail', objects: [onTarget.id] });
    await api.request('PUT', `/api/v1/instances/${onTarget.id}/volume`, { replicas: 3, healthy_replicas: 2 });
    expect(await check('volume-last-replica')).toMatchObject({ status: 'pass' });
    await api.request('PUT', `/api/v1/instances/${onTarget.id}/volume`, { replicas: 2, healthy_replicas: 1 });
    expect(await check('volume-last-replica')).toMatchObject({ status: 'fail' });
    expect((await api.request<InstanceView>('DELETE', `/api/v1/instances/${onTarget.id}/volume`)).body.volume).toBeNull();
    expect(await check('volume-last-replica')).toMatchObject({ status: 'pass' });
  });

  it('backup-in-progress fails while a backup runs, passes when it ends, and a report nobody renews expires', async () => {
    expect(await check('backup-in-progress')).toMatchObject({ status: 'pass' });
    expect((await api.request('PUT', `/api/v1/instances/${onTarget.id}/activity`, { activity: 'backup' })).status).toBe(200);
    expect(await check('backup-in-progress')).toMatchObject({ status: 'fail', objects: [onTarget.id] });
    await api.request('DELETE', `/api/v1/instances/${onTarget.id}/activity`);
    expect(await check('backup-in-progress')).toMatchObject({ status: 'pass' });

    await api.request('PUT', `/api/v1/instances/${onTarget.id}/activity`, { activity: 'snapshot', expires_in: '1s' });
    expect((await api.ok<InstanceView>(`/api/v1/instances/${onTarget.id}`)).activity).toBe('snapshot');
    await waitFor('the snapshot report to expire', async () => (await check('backup-in-progress')).status === 'pass', { timeoutMs: 10_000, intervalMs: 200 });
    expect((await api.ok<InstanceView>(`/api/v1/instances/${onTarget.id}`)).activity).toBeNull();
  });

  it('refuses a bad report with a clear 4xx and changes nothing', async () => {
    const before = await rows();
    expectApiError(await api.request('PUT', `/api/v1/instances/${onTarget.id}/volume`, { replicas: 2, healthy_replicas: 3 }), 400, 'VALIDATION_FAILED');
    expectApiError(await api.request('PUT', `/api/v1/instances/${onTarget.id}/volume`, { replicas: 2 }), 400, 'VALIDATION_FAILED');
    expectApiError(await api.request('PUT', `/api/v1/instances/${onTarget.id}/activity`, { activity: 'defrag' }), 400, 'VALIDATION_FAILED');
    expectApiError(await api.request('PUT', `/api/v1/instances/${onTarget.id}/activity`, { activity: 'backup', expires_in: 'soon' }), 400, 'VALIDATION_FAILED');
    expectApiError(await api.request('PUT', '/api/v1/instances/nope/activity', { activity: 'backup' }), 404, 'INSTANCE_NOT_FOUND');
    expectApiError(await api.request('DELETE', '/api/v1/instances/nope/volume'), 404, 'INSTANCE_NOT_FOUND');
    expect(await rows()).toEqual(before);
  });

  it("takes volume and activity from the agent's heartbeat, and refuses an out-of-shape one whole", async () => {
    const entry = { id: onTarget.id, status: 'running' as const, healthy: true, pid: 20_100, port: 43_100 };
    pf1.report({ ...entry, volume: { replicas: 3, healthy_replicas: 1 }, activity: 'backup' });
    await pf1.heartbeat();
    expect(await api.ok<InstanceView>(`/api/v1/instances/${onTarget.id}`)).toMatchObject({
      volume: { replicas: 3, healthy_replicas: 1 },
      volume_source: 'agent',
      volume_expires_at: null,
      activity: 'backup',
      activity_source: 'agent',
    });
    expect(await check('volume-last-replica')).toMatchObject({ status: 'fail', objects: [onTarget.id] });
    expect(await check('backup-in-progress')).toMatchObject({ status: 'fail', objects: [onTarget.id] });

    const before = await rows();
    const heartbeat = (instance: Record<string, unknown>) =>
      api.post('/api/v1/agent/heartbeat', { node_id: pf1.id, agent_version: 'test', protocol_version: 1, components: {}, instances: [instance], generation: 0 }, { headers: { 'x-drydock-node-credential': pf1.credential } });
    for (const bad of [{ volume: { replicas: 2, healthy_replicas: 3 } }, { volume: { replicas: 3, healthy_replicas: 1, zone: 'a' } }, { volume: { replicas_total: 3, replicas_healthy: 1 } }, { activity: 'defrag' }, { activity: { kind: 'backup' } }]) {
      expectApiError(await heartbeat({ ...entry, ...bad }), 400, 'VALIDATION_FAILED');
    }
    expect(await rows()).toEqual(before);

    pf1.report(entry);
    await pf1.heartbeat();
    expect(await api.ok<InstanceView>(`/api/v1/instances/${onTarget.id}`)).toMatchObject({ volume: null, volume_source: null, activity: null, activity_source: null });
    expect(await check('volume-last-replica')).toMatchObject({ status: 'pass' });
    expect(await check('backup-in-progress')).toMatchObject({ status: 'pass' });
  });
});
