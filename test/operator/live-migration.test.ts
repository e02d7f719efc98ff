import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DesiredInstance } from '../../src/domain/protocol.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { EventRow } from '../../src/store/events.js';
import type { MigrationView } from '../../src/store/instance-migrations.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

// The operator's side of live migration (DESIGN.md §10) driven by scripted agents over HTTP:
// the migration row, what each side is told, what their reports move, and what a failure
// withdraws. The agents' side (real QEMU) is test/vm.
describe(`operator live migration on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let fleet: FakeNode[];
  let port = 41000;
  const keys = generateSigningKeyPair();
  const nodeOf = (id: string) => fleet.find((n) => n.id === id) as FakeNode;
  const instancesOf = (deployment: string) => api.ok<InstanceView[]>(`/api/v1/instances?deployment=${deployment}`);
  const migrationsOf = (instance: string) => api.ok<MigrationView[]>(`/api/v1/migrations?instance=${instance}`);
  const desiredOn = async (node: FakeNode, id: string) => (await node.heartbeat()).instances.find((i) => i.id === id) as DesiredInstance | undefined;
  const count = async (sql: string) => (await t.db.query<{ n: number }>(sql))[0]?.n;

  async function publishImage(version: string, kind = 'vm-image'): Promise<string> {
    const bytes = randomBytes(4096);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const query = new URLSearchParams({ component: 'guest', version, kind });
    query.set('signature', signArtifact(keys.privatePem, { component: 'guest', version, kind, sha256 }));
    query.set('public_key', keys.publicPem);
    const response = await fetch(`${op.url}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
    expect(response.status).toBe(201);
    return ((await response.json()) as { id: string }).id;
  }

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    fleet = [
      await FakeNode.register(api, { hostname: 'vm-a', region: 'us-east' }),
      await FakeNode.register(api, { hostname: 'vm-b', region: 'us-east' }),
      await FakeNode.register(api, { hostname: 'vm-c', region: 'us-east' }),
    ];
    for (const node of fleet) node.startHeartbeats();
  });
  afterAll(async () => {
    for (const node of fleet ?? []) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
  });

  it('refuses a vm workload whose image is not a signed vm-image, and stores nothing', async () => {
    await publishImage('0.9.0', 'binary');
    const before = await count('SELECT count(*)::int AS n FROM deployments');
    const vm = (image: string) => ({ name: 'bad-vm', replicas: 1, workload: { driver: 'vm', image } });
    expectApiError(await api.post('/api/v1/deployments', vm('guest@9.9.9')), 422, 'VM_IMAGE_INVALID');
    expectApiError(await api.post('/api/v1/deployments', vm('guest@0.9.0')), 422, 'VM_IMAGE_INVALID');
    expectApiError(await api.post('/api/v1/deployments', { ...vm('guest@0.9.0'), workload: { driver: 'vm', image: 'guest@0.9.0', image_artifact_id: 'x' } }), 400, 'VALIDATION_FAILED');
    expectApiError(await api.post('/api/v1/deployments', { ...vm('guest@0.9.0'), workload: { driver: 'vm', image: 'guest@0.9.0', command: 'sleep' } }), 400, 'VALIDATION_FAILED');
    expect(await count('SELECT count(*)::int AS n FROM deployments')).toBe(before);
  });

  it('moves a VM live on drain: target listens, source transfers, target takes over; the move records its downtime', async () => {
    const imageId = await publishImage('1.0.0');
    const created = await api.post<{ workload: { image_artifact_id: string; memory_mb: number; vcpus: number; guest_port: number } }>('/api/v1/deployments', {
      name: 'vmweb',
      replicas: 2,
      workload: { driver: 'vm', image: 'guest@1.0.0' },
    });
    expect(created.status).toBe(201);
    expect(created.body.workload).toMatchObject({ image_artifact_id: imageId, memory_mb: 128, vcpus: 1, guest_port: 8080 });
    const placed = await waitFor('vmweb placed', async () => {
      const list = await instancesOf('vmweb');
      return list.length === 2 && list;
    });
    for (const i of placed) nodeOf(i.node_id).runHealthy(i.id, ++port);
    await waitFor('vmweb serving', async () => (await instancesOf('vmweb')).filter((i) => i.published).length === 2);

    const old = placed[0] as InstanceView;
    const source = nodeOf(old.node_id);
    // The agent is told which signed image to boot and may download it.
    const want = (await desiredOn(source, old.id)) as DesiredInstance;
    expect(want.image).toMatchObject({ artifact_id: imageId, component: 'guest', version: '1.0.0' });
    const blob = await fetch(`${op.url}${want.image?.url}`, { headers: { 'x-drydock-node-credential': source.credential } });
    expect(blob.status).toBe(200);
    await blob.arrayBuffer();

    expect((await api.post(`/api/v1/nodes/${source.id}/drain`, {})).status).toBe(202);
    const move = await waitFor('a live migration', async () => (await migrationsOf(old.id)).find((m) => m.state === 'preparing'));
    expect(move).toMatchObject({ mode: 'live', trigger: 'drain', source_node_id: source.id, downtime_limit_ms: 300 });
    const target = nodeOf(move.target_node_id);
    expect(await desiredOn(target, move.target_instance_id)).toMatchObject({ migration: { id: move.id, role: 'target' } });
    expect((await desiredOn(source, old.id))?.migration).toBeUndefined();

    // The target's QEMU listens: the source is told where to send the guest.
    target.report({ id: move.target_instance_id, status: 'starting', healthy: false, pid: 1, port: ++port, migration: { migration_id: move.id, role: 'target', state: 'ready', address: 'tcp:127.0.0.1:4444' } });
    await target.heartbeat();
    await waitFor('target_ready', async () => (await migrationsOf(old.id))[0]?.state === 'target_ready');
    expect((await desiredOn(source, old.id))?.migration).toMatchObject({ id: move.id, role: 'source', address: 'tcp:127.0.0.1:4444', downtime_limit_ms: 300 });

    source.report({ id: old.id, status: 'running', healthy: true, pid: 2, port: 7, migration: { migration_id: move.id, role: 'source', state: 'transferring' } });
    await source.heartbeat();
    await waitFor('transferring', async () => (await migrationsOf(old.id))[0]?.state === 'transferring');
    // The old one serves until the guest runs on the target.
    expect((await api.ok<InstanceView>(`/api/v1/instances/${old.id}`)).published).toBe(true);

    const stats = { total_ms: 612.5, downtime_ms: 57, transferred_bytes: 94_000_000 };
    source.report({ id: old.id, status: 'stopped', healthy: false, pid: null, port: null, migration: { migration_id: move.id, role: 'source', state: 'completed', ...stats } });
    await source.heartbeat();
    await waitFor('switching', async () => (await migrationsOf(old.id))[0]?.state === 'switching');
    target.report({ id: move.target_instance_id, status: 'running', healthy: true, pid: 1, port, migration: { migration_id: move.id, role: 'target', state: 'ready', address: 'tcp:127.0.0.1:4444' } });
    await target.heartbeat();
    const done = await waitFor('completed', async () => (await migrationsOf(old.id)).find((m) => m.state === 'completed'));
    expect(done).toMatchObject(stats);
    expect(done.ended_at).not.toBeNull();
    expect((await api.ok<InstanceView>(`/api/v1/instances/${move.target_instance_id}`)).published).toBe(true);
    // The old instance reported stopped (its guest left) and was withdrawn: its row is gone.
    await waitFor('the old instance withdrawn', async () => !(await instancesOf('vmweb')).some((i) => i.id === old.id));
    const events = await api.ok<EventRow[]>('/api/v1/events?after=0&kind_prefix=migration.');
    expect(events.map((e) => e.kind)).toEqual(['migration.target_ready', 'migration.switching', 'migration.completed']);
    expect(events[2]?.data).toMatchObject({ migration_id: move.id, mode: 'live', ...stats });
    expect(await api.ok<MigrationView>(`/api/v1/migrations/${move.id}`)).toMatchObject({ id: move.id, state: 'completed', deployment: 'vmweb' });
    expect((await api.ok<MigrationView[]>('/api/v1/migrations?state=completed')).map((m) => m.id)).toContain(move.id);
    const metrics = await (await fetch(`${op.url}/metrics`)).text();
    expect(metrics).toMatch(/drydock_migrations_total\{mode="live",outcome="completed"\} 1/);
    expect(metrics).toMatch(/drydock_migration_downtime_seconds_count\{mode="live"\} 1/);
    expect(metrics).toMatch(/drydock_migration_duration_seconds_sum\{mode="live"\} 0.6125/);
    expect(metrics).toMatch(/^drydock_migration_elapsed_seconds_count\{mode="live",outcome="completed"\} 1$/m);
    // The target is an ordinary instance again: nothing about the move is in its desired state.
    expect((await desiredOn(target, move.target_instance_id))?.migration).toBeUndefined();
    source.reportStopped(old.id);
    await api.post(`/api/v1/nodes/${source.id}/enable`);
  });

  it('a failed transfer withdraws the target and leaves the source serving; a second move of the instance is refused meanwhile', async () => {
    const serving = (await instancesOf('vmweb')).filter((i) => i.published && i.desired === 'running');
    const moving = serving[0] as InstanceView;
    const source = nodeOf(moving.node_id);
    const started = await api.post<{ migration_id: string; replacement_id: string; mode: string }>(`/api/v1/instances/${moving.id}/migrate`, {
      downtime_limit_ms: 120,
      deadline: '2m',
    });
    expect(started.status).toBe(202);
    expect(started.body.mode).toBe('live');
    expectApiError(await api.post(`/api/v1/instances/${moving.id}/migrate`, {}), 409, 'MIGRATION_IN_PROGRESS');
    const [move] = await migrationsOf(moving.id);
    expect(move).toMatchObject({ id: started.body.migration_id, trigger: 'manual', downtime_limit_ms: 120, state: 'preparing' });
    const target = nodeOf((move as MigrationView).target_node_id);
    target.report({ id: started.body.replacement_id, status: 'starting', healthy: false, pid: 3, port: ++port, migration: { migration_id: started.body.migration_id, role: 'target', state: 'ready', address: 'tcp:127.0.0.1:5555' } });
    await target.heartbeat();
    await waitFor('target_ready', async () => (await migrationsOf(moving.id))[0]?.state === 'target_ready');
    source.report({ id: moving.id, status: 'running', healthy: true, pid: 4, port: 9, migration: { migration_id: started.body.migration_id, role: 'source', state: 'failed', reason: 'target went away' } });
    await source.heartbeat();
    const failed = await waitFor('failed', async () => (await migrationsOf(moving.id)).find((m) => m.state === 'failed'));
    expect(failed.reason).toMatch(/target went away/);
    expect(await (await fetch(`${op.url}/metrics`)).text()).toMatch(/drydock_migrations_total\{mode="live",outcome="failed"\} 1/);
    expect((await api.ok<InstanceView>(`/api/v1/instances/${started.body.replacement_id}`)).desired).toBe('stopped');
    const still = await api.ok<InstanceView>(`/api/v1/instances/${moving.id}`);
    expect(still).toMatchObject({ desired: 'running', published: true });
    expect((await desiredOn(source, moving.id))?.migration).toBeUndefined();
  });

  /** A manual live move of a serving vmweb instance, up to the target listening (its QEMU waits for the guest). */
  async function manualMoveToTargetReady() {
    const serving = (await instancesOf('vmweb')).filter((i) => i.published && i.desired === 'running');
    const moving = serving[0] as InstanceView;
    const source = nodeOf(moving.node_id);
    const started = await api.post<{ migration_id: string; replacement_id: string }>(`/api/v1/instances/${moving.id}/migrate`, {});
    expect(started.status).toBe(202);
    const { migration_id: id, replacement_id: replacement } = started.body;
    const target = nodeOf(((await migrationsOf(moving.id)).find((m) => m.id === id) as MigrationView).target_node_id);
    target.report({ id: replacement, status: 'starting', healthy: false, pid: 5, port: ++port, migration: { migration_id: id, role: 'target', state: 'ready', address: `tcp:127.0.0.1:${port + 1000}` } });
    await target.heartbeat();
    await waitFor('target_ready', async () => (await migrationsOf(moving.id)).find((m) => m.id === id)?.state === 'target_ready');
    return { serving, moving, source, id, replacement, target };
  }

  it('a target that dies after the transfer while the source holds the guest paused: the source keeps it and is told to resume', async () => {
    const { serving, moving, source, id, replacement, target } = await manualMoveToTargetReady();
    // Handed over; its QEMU keeps the guest paused (reported `starting`) until told what became of the move.
    const completed = { migration_id: id, role: 'source' as const, state: 'completed' as const, total_ms: 800, downtime_ms: 30, transferred_bytes: 9e7 };
    source.report({ id: moving.id, status: 'starting', healthy: false, pid: 7, port: 11, migration: completed });
    await source.heartbeat();
    await waitFor('switching', async () => (await migrationsOf(moving.id)).find((m) => m.id === id)?.state === 'switching');
    expect((await desiredOn(source, moving.id))?.migration).toMatchObject({ id, role: 'source' });
    target.report({ id: replacement, status: 'failed', healthy: false, pid: null, port: null, message: 'QEMU exited' });
    await target.heartbeat();
    const failed = await waitFor('failed', async () => (await migrationsOf(moving.id)).find((m) => m.id === id && m.state === 'failed'));
    expect(failed.reason).toMatch(/after the transfer completed: the guest resumes on the source/);
    const event = (await api.ok<EventRow[]>('/api/v1/events?after=0&kind_prefix=migration.failed')).find((e) => e.data.migration_id === id);
    expect(event?.data).toMatchObject({ source_resumes: true });
    expect(event?.data).not.toHaveProperty('guest_lost');
    // The source is still wanted, with no move: its agent resumes the guest, and it serves again.
    const want = await desiredOn(source, moving.id);
    expect(want).toMatchObject({ desired: 'running' });
    expect(want?.migration).toBeUndefined();
    source.report({ id: moving.id, status: 'running', healthy: true, pid: 7, port: 11 });
    await source.heartbeat();
    await waitFor('the source serving again', async () => (await api.ok<{ instance_id: string }[]>('/api/v1/deployments/vmweb/endpoints')).some((e) => e.instance_id === moving.id));
    expect((await instancesOf('vmweb')).filter((i) => i.desired === 'running').map((i) => i.id).sort()).toEqual(serving.map((i) => i.id).sort());
  });

  it('a target that dies after the transfer lost the guest: both sides are withdrawn and a new replica is placed', async () => {
    const { serving, moving, source, id, replacement, target } = await manualMoveToTargetReady();
    // The source handed the guest over and quit; then the target's QEMU died before it served.
    source.report({ id: moving.id, status: 'stopped', healthy: false, pid: null, port: null, migration: { migration_id: id, role: 'source', state: 'completed', total_ms: 900, downtime_ms: 40, transferred_bytes: 9e7 } });
    await source.heartbeat();
    await waitFor('switching', async () => (await migrationsOf(moving.id)).find((m) => m.id === id)?.state === 'switching');
    target.report({ id: replacement, status: 'failed', healthy: false, pid: null, port: null, message: 'QEMU exited' });
    await target.heartbeat();
    const failed = await waitFor('failed', async () => (await migrationsOf(moving.id)).find((m) => m.id === id && m.state === 'failed'));
    expect(failed.reason).toMatch(/^the guest was lost: the target instance failed.* after the transfer completed/);
    const event = (await api.ok<EventRow[]>('/api/v1/events?after=0&kind_prefix=migration.failed')).find((e) => e.data.migration_id === id);
    expect(event?.data).toMatchObject({ guest_lost: true, from_state: 'switching' });
    // Neither side stays published or wanted, so no endpoint points at a guest that is gone and
    // no later move waits for a source that no longer runs one.
    for (const gone of [moving.id, replacement]) {
      expect(await api.ok<InstanceView>(`/api/v1/instances/${gone}`).catch(() => null), gone).toSatisfy(
        (row: InstanceView | null) => row === null || (row.desired === 'stopped' && row.published === false),
      );
    }
    expect((await api.ok<{ instance_id: string }[]>('/api/v1/deployments/vmweb/endpoints')).map((e) => e.instance_id)).not.toContain(moving.id);
    const fresh = await waitFor('a new replica placed', async () =>
      (await instancesOf('vmweb')).find((i) => i.desired === 'running' && i.id !== moving.id && i.id !== replacement && !serving.some((s) => s.id === i.id)),
    );
    expect(fresh).toMatchObject({ desired: 'running' });
    expect(await count(`SELECT count(*)::int AS n FROM instance_migrations WHERE instance_id = '${moving.id}' AND state IN ('preparing', 'target_ready', 'transferring', 'switching')`)).toBe(0);
  });

  it('refuses a live move of a process workload and bad list filters with a clear 4xx', async () => {
    expect((await api.post('/api/v1/deployments', { name: 'proc', replicas: 1, workload: { command: 'sleep' } })).status).toBe(201);
    const [instance] = await waitFor('proc placed', async () => {
      const list = await instancesOf('proc');
      return list.length === 1 && list;
    });
    const before = await count('SELECT count(*)::int AS n FROM instance_migrations');
    expectApiError(await api.post(`/api/v1/instances/${(instance as InstanceView).id}/migrate`, { mode: 'live' }), 422, 'LIVE_MIGRATION_UNSUPPORTED');
    expect(await count('SELECT count(*)::int AS n FROM instance_migrations')).toBe(before);
    expectApiError(await api.get('/api/v1/migrations?state=sideways'), 400, 'VALIDATION_FAILED');
    expectApiError(await api.get('/api/v1/migrations/nope'), 404, 'MIGRATION_NOT_FOUND');
  });
});
