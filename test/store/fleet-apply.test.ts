import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetActions, type FleetOptions, reconcileFleet } from '../../src/domain/fleet-reconcile.js';
import { findDeployment, insertDeployment } from '../../src/store/deployments.js';
import { startDrain } from '../../src/store/drains.js';
import { listEvents } from '../../src/store/events.js';
import { applyFleetDecision } from '../../src/store/fleet-apply.js';
import { loadFleetSnapshot } from '../../src/store/fleet-snapshot.js';
import { listInstances } from '../../src/store/instances.js';
import { findNode, nodeGenerations, recordHeartbeats, registerNode, setCordoned, setNodeStatuses } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, instanceRow, registerRequest, running, stopped, WORKLOAD } from '../support/store-fixtures.js';

const OPTIONS: FleetOptions = { heartbeatGraceMs: 60_000, migrationTimeoutMs: 60_000 };

describe(`store/fleet-snapshot + fleet-apply on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let seq = 0;
  const newId = () => `inst-${String(++seq).padStart(3, '0')}`;
  const nodes = { a: 'node-a', b: 'node-b', c: 'node-c' };

  /** One reconciler pass, as the operator runs it: snapshot, pure decision, one transaction. */
  async function pass(): Promise<{ actions: FleetActions; touched: string[] }> {
    const { snapshot, now } = await loadFleetSnapshot(t.db);
    const actions = reconcileFleet(snapshot, now, OPTIONS);
    const { touched } = await applyFleetDecision(t.db, actions, newId, 'reconciler');
    return { actions, touched };
  }

  const eventsSince = async (after: number) =>
    (await listEvents(t.db, { after })).map((e) => ({ kind: e.kind, node: e.node_id, instance: e.instance_id, actor: e.actor }));
  const lastEventId = async () => (await listEvents(t.db)).at(-1)?.id ?? 0;

  beforeAll(async () => {
    t = await createTestDb();
    await registerNode(t.db, registerRequest('fa-a', { max_instances: 2, labels: { zone: 'a' } }), nodes.a);
    await registerNode(t.db, registerRequest('fa-b', { max_instances: 2 }), nodes.b);
    await registerNode(t.db, registerRequest('fa-c', { region: 'eu-west', max_instances: 2 }), nodes.c);
  });
  afterAll(async () => t.cleanup());

  it('loads a snapshot with typed fields and the database clock', async () => {
    await insertDeployment(t.db, 'dep-web', { name: 'web', replicas: 3, min_available: 2, workload: WORKLOAD });
    const { snapshot, now } = await loadFleetSnapshot(t.db);
    expect(now).toBeInstanceOf(Date);
    expect(Math.abs(now.getTime() - Date.now())).toBeLessThan(60_000);
    expect(snapshot.nodes.map((n) => n.id)).toEqual([nodes.a, nodes.b, nodes.c]);
    expect(snapshot.nodes[0]).toMatchObject({
      hostname: 'fa-a',
      region: 'us-east',
      role: 'worker',
      labels: { zone: 'a' },
      status: 'ready',
      cordoned: false,
      maxInstances: 2,
    });
    expect(snapshot.nodes[0]?.lastHeartbeatAt).toBeInstanceOf(Date);
    expect(snapshot.deployments).toEqual([
      { id: 'dep-web', name: 'web', replicas: 3, minAvailable: 2, workload: WORKLOAD, nodeSelector: null },
    ]);
    expect(snapshot.instances).toEqual([]);
    expect(snapshot.drains).toEqual([]);
  });

  it('places missing replicas across nodes, records events and bumps each touched node once', async () => {
    const generations = await nodeGenerations(t.db);
    const after = await lastEventId();
    const { actions, touched } = await pass();

    expect(actions.create).toHaveLength(3);
    expect(touched.sort()).toEqual([nodes.a, nodes.b, nodes.c]);
    const instances = await listInstances(t.db, { deploymentId: 'dep-web' });
    expect(instances.map((i) => [i.id, i.desired, i.status, i.published])).toEqual(
      ['inst-001', 'inst-002', 'inst-003'].map((id) => [id, 'running', 'pending', false]),
    );
    expect(new Set(instances.map((i) => i.node_id)).size).toBe(3);

    const next = await nodeGenerations(t.db);
    for (const id of Object.values(nodes)) expect(next.get(id)).toBe((generations.get(id) as number) + 1);

    const events = await eventsSince(after);
    expect(events).toHaveLength(3);
    expect(events.every((e) => e.kind === 'instance.placed' && e.actor === 'reconciler')).toBe(true);
    expect(events.map((e) => [e.instance, e.node]).sort()).toEqual(instances.map((i) => [i.id, i.node_id]).sort());
    const [placed] = await listEvents(t.db, { after, limit: 1 });
    expect(placed?.data).toEqual({ deployment_id: 'dep-web', replaces: null });

    // Level-triggered: the same facts ask for nothing more.
    const again = await pass();
    expect(again.actions.create).toEqual([]);
    expect(again.touched).toEqual([]);
    expect(await eventsSince(await lastEventId())).toEqual([]);
  });

  it('publishes instances their agents report healthy, without waking any agent', async () => {
    const instances = await listInstances(t.db, { deploymentId: 'dep-web' });
    await recordHeartbeats(
      t.db,
      instances.map((i, n) => heartbeat(i.node_id, [running(i.id, 32000 + n)])),
    );
    const generations = await nodeGenerations(t.db);
    const { actions, touched } = await pass();
    expect(actions.publish.sort()).toEqual(instances.map((i) => i.id).sort());
    expect(touched).toEqual([]);
    expect(await nodeGenerations(t.db)).toEqual(generations);
    expect((await listInstances(t.db, { deploymentId: 'dep-web' })).every((i) => i.published && i.healthy)).toBe(true);
    expect(await findDeployment(t.db, 'web')).toMatchObject({ healthy_instances: 3, instances: 3 });
  });

  it('drains a node make-before-break: replacement first, then the old one stops, then the row goes', async () => {
    const old = (await listInstances(t.db, { nodeId: nodes.a }))[0];
    if (!old) throw new Error('expected an instance on node a');
    await t.db.transaction(async (tx) => {
      await setCordoned(tx, nodes.a, true);
      await startDrain(tx, nodes.a, { force: false, timeoutMs: 600_000 });
      await setNodeStatuses(tx, [{ nodeId: nodes.a, status: 'draining' }]);
    });

    // Pass 1: a replacement is placed on another node; the old one keeps serving.
    let after = await lastEventId();
    let generations = await nodeGenerations(t.db);
    const first = await pass();
    expect(first.actions.create).toHaveLength(1);
    const replacement = (await listInstances(t.db)).find((i) => i.replaces === old.id);
    if (!replacement) throw new Error('expected a replacement');
    expect(replacement.node_id).not.toBe(nodes.a);
    expect(first.touched).toEqual([replacement.node_id]);
    expect((await nodeGenerations(t.db)).get(replacement.node_id)).toBe((generations.get(replacement.node_id) as number) + 1);
    expect(await instanceRow(t.db, old.id)).toMatchObject({ desired: 'running', published: true });
    expect((await eventsSince(after)).map((e) => [e.kind, e.instance])).toEqual([
      ['instance.migration_started', old.id],
      ['instance.replacement_placed', replacement.id],
    ]);
    expect((await findNode(t.db, nodes.a))?.drain).toMatchObject({ state: 'running', message: 'moving 1 instance(s)' });

    // A pass before the replacement is healthy changes nothing: no second replacement.
    expect((await pass()).actions.create).toEqual([]);

    // Pass 2: the replacement is healthy, so it takes over and the old one is withdrawn and stopped.
    await recordHeartbeats(t.db, [heartbeat(replacement.node_id, [running(replacement.id, 33000)])]);
    after = await lastEventId();
    generations = await nodeGenerations(t.db);
    const second = await pass();
    expect(second.actions.publish).toEqual([replacement.id]);
    expect(second.touched).toEqual([nodes.a]);
    expect((await nodeGenerations(t.db)).get(nodes.a)).toBe((generations.get(nodes.a) as number) + 1);
    expect(await instanceRow(t.db, replacement.id)).toMatchObject({ published: true, replaces: null, desired: 'running' });
    expect(await instanceRow(t.db, old.id)).toMatchObject({ desired: 'stopped', published: false });
    expect((await eventsSince(after)).map((e) => [e.kind, e.instance])).toEqual([
      ['instance.migration_completed', replacement.id],
      ['instance.published', replacement.id],
      ['instance.withdrawn', old.id],
    ]);
    expect(await findDeployment(t.db, 'web')).toMatchObject({ instances: 3, healthy_instances: 3 });

    // Pass 3: the agent reports the old one stopped: the row goes and the drain completes.
    await recordHeartbeats(t.db, [heartbeat(nodes.a, [stopped(old.id)])]);
    after = await lastEventId();
    const third = await pass();
    expect(third.actions.remove).toEqual([old.id]);
    expect(await instanceRow(t.db, old.id)).toBeUndefined();
    expect(await findNode(t.db, nodes.a)).toMatchObject({
      draining: false,
      active_instances: 0,
      drain: { state: 'completed', message: 'all instances moved off the node' },
    });
    expect((await eventsSince(after)).map((e) => [e.kind, e.node])).toEqual([['node.drained', nodes.a]]);

    // The status follows the completed drain on the next pass (it is derived from the snapshot).
    const fourth = await pass();
    expect(fourth.actions.nodeStatus).toEqual([{ nodeId: nodes.a, status: 'cordoned' }]);
    expect((await findNode(t.db, nodes.a))?.status).toBe('cordoned');

    // Nothing is placed back on the cordoned node, and the fleet is settled.
    const settled = await pass();
    expect(settled.actions).toEqual({ nodeStatus: [], create: [], publish: [], stop: [], remove: [], drains: [], events: [] });
  });

  it('marks a node down when its heartbeats stop, with an event', async () => {
    await t.db.query(`UPDATE nodes SET last_heartbeat_at = now() - interval '5 minutes' WHERE id = $1`, [nodes.c]);
    const after = await lastEventId();
    const { actions } = await pass();
    expect(actions.nodeStatus).toEqual([{ nodeId: nodes.c, status: 'down' }]);
    expect((await findNode(t.db, nodes.c))?.status).toBe('down');
    expect(await eventsSince(after)).toEqual([{ kind: 'node.down', node: nodes.c, instance: null, actor: 'reconciler' }]);
    const [down] = await listEvents(t.db, { after });
    expect(down?.data).toEqual({ hostname: 'fa-c', from: 'ready', to: 'down' });
  });

  it('rolls the whole decision back when one part of it fails', async () => {
    const before = await listInstances(t.db);
    const generations = await nodeGenerations(t.db);
    const after = await lastEventId();
    const actions: FleetActions = {
      nodeStatus: [{ nodeId: nodes.b, status: 'cordoned' }],
      create: [
        { deploymentId: 'dep-web', nodeId: nodes.b, replaces: null },
        { deploymentId: 'no-such-deployment', nodeId: nodes.b, replaces: null },
      ],
      publish: [],
      stop: [],
      remove: [],
      drains: [],
      events: [{ kind: 'test.should_not_exist', data: {} }],
    };
    await expect(applyFleetDecision(t.db, actions, newId, 'reconciler')).rejects.toThrow();
    expect(await listInstances(t.db)).toEqual(before);
    expect(await nodeGenerations(t.db)).toEqual(generations);
    expect((await findNode(t.db, nodes.b))?.status).toBe('ready');
    expect(await eventsSince(after)).toEqual([]);
  });
});
