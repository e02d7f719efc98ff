// Scoped snapshots and guarded applies (DESIGN.md §3): a pass loads only its key's rows, and a
// decision made from rows that changed before it was applied is refused — nothing of it written —
// instead of being applied. Runs on both engines.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FleetOptions, reconcileLiveness, reconcileScope } from '../../src/domain/fleet-reconcile.js';
import { insertDeployment } from '../../src/store/deployments.js';
import { startDrain } from '../../src/store/drains.js';
import { listEvents } from '../../src/store/events.js';
import { applyFleetDecision, FleetConflictError } from '../../src/store/fleet-apply.js';
import { deploymentsOnNodes, loadLivenessSnapshot, loadScopeSnapshot, readClock } from '../../src/store/fleet-snapshot.js';
import { insertInstances, listInstances } from '../../src/store/instances.js';
import { findNode, recordHeartbeats, registerNode, setCordoned } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, registerRequest, running, WORKLOAD } from '../support/store-fixtures.js';

const OPTIONS: FleetOptions = { heartbeatGraceMs: 60_000, migrationTimeoutMs: 60_000 };

describe(`scoped fleet snapshots and guarded applies on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let seq = 0;
  const newId = () => `g-inst-${++seq}`;
  const lastEventId = async () => (await listEvents(t.db)).at(-1)?.id ?? 0;

  beforeAll(async () => {
    t = await createTestDb();
    for (const [id, region] of [['g-a', 'us-east'], ['g-b', 'us-east'], ['g-c', 'us-east'], ['g-d', 'eu-west']] as const) {
      await registerNode(t.db, registerRequest(id, { region, max_instances: 3 }), id);
    }
    await insertDeployment(t.db, 'dep-web', { name: 'web', replicas: 2, min_available: 1, workload: WORKLOAD });
    await insertDeployment(t.db, 'dep-api', { name: 'api', replicas: 1, min_available: 1, workload: WORKLOAD });
    await insertInstances(t.db, [
      { id: 'web-1', deploymentId: 'dep-web', nodeId: 'g-a', replaces: null },
      { id: 'web-2', deploymentId: 'dep-web', nodeId: 'g-b', replaces: null },
      { id: 'api-1', deploymentId: 'dep-api', nodeId: 'g-c', replaces: null },
    ]);
    await recordHeartbeats(t.db, [heartbeat('g-a', [running('web-1', 41001)]), heartbeat('g-b', [running('web-2', 41002)]), heartbeat('g-c', [running('api-1', 41003)])]);
  });
  afterAll(async () => t.cleanup());

  it("loads a node's scope: its deployments' instances and their nodes, not the rest of the fleet", async () => {
    expect(await deploymentsOnNodes(t.db, ['g-a'])).toEqual(['dep-web']);
    const scope = await loadScopeSnapshot(t.db, { deploymentIds: ['dep-web'], drainNodeIds: ['g-a'], candidates: false });
    expect(scope.deployments.map((d) => d.id)).toEqual(['dep-web']);
    expect(scope.instances.map((i) => i.id)).toEqual(['web-1', 'web-2']);
    expect(scope.nodes.map((n) => n.id)).toEqual(['g-a', 'g-b']);
    // Without candidates nobody has room: placement waits for the load of every node.
    expect([...(scope.load ?? [])]).toEqual([['g-a', 3], ['g-b', 3]]);
    const withRoom = await loadScopeSnapshot(t.db, { deploymentIds: ['dep-web'], drainNodeIds: ['g-a'], candidates: true });
    expect(withRoom.nodes.map((n) => n.id)).toEqual(['g-a', 'g-b', 'g-c', 'g-d']);
    // The load counts every deployment's instances (api-1 on g-c), not only the scope's.
    expect(withRoom.load?.get('g-c')).toBe(1);
  });

  it('loads for liveness only the nodes that may change status, with every region counted', async () => {
    await t.db.query(`UPDATE nodes SET last_heartbeat_at = now() - interval '45 seconds' WHERE id = 'g-d'`);
    const { snapshot } = await loadLivenessSnapshot(t.db, { graceMs: 60_000, touched: ['g-a'] });
    expect(snapshot.nodes.map((n) => n.id)).toEqual(['g-a', 'g-d']);
    expect(Object.fromEntries(snapshot.regionTotals ?? [])).toEqual({ 'us-east': 3, 'eu-west': 1 });
    const all = await loadLivenessSnapshot(t.db, { graceMs: 60_000, touched: [], all: true });
    expect(all.snapshot.nodes).toHaveLength(4);
  });

  it('refuses a drain decision when the drain was started again after it was decided', async () => {
    await startDrain(t.db, 'g-a', { force: false, timeoutMs: 60_000 });
    const { now } = await readClock(t.db);
    const scope = { deploymentIds: ['dep-web'], drainNodeIds: ['g-a'], candidates: true };
    const snapshot = await loadScopeSnapshot(t.db, scope);
    const { actions } = reconcileScope(snapshot, now, OPTIONS);
    expect(actions.create).toEqual([{ deploymentId: 'dep-web', nodeId: 'g-c', replaces: 'web-1', move: expect.objectContaining({ fromNodeId: 'g-a', mode: 'restart', trigger: 'drain' }) }]);
    // Meanwhile someone drains it again (a new drain with a new start).
    await new Promise((r) => setTimeout(r, 5));
    await startDrain(t.db, 'g-a', { force: true, timeoutMs: 60_000 });
    const before = { instances: await listInstances(t.db), event: await lastEventId() };
    await expect(applyFleetDecision(t.db, actions, newId, 'reconciler', undefined, snapshot)).rejects.toBeInstanceOf(FleetConflictError);
    expect(await listInstances(t.db)).toEqual(before.instances);
    expect(await lastEventId()).toBe(before.event);
    // Decided again on the new rows, it applies.
    const fresh = await loadScopeSnapshot(t.db, scope);
    const again = reconcileScope(fresh, now, OPTIONS).actions;
    await applyFleetDecision(t.db, again, newId, 'reconciler', undefined, fresh);
    expect((await listInstances(t.db, { deploymentId: 'dep-web' })).filter((i) => i.replaces === 'web-1')).toHaveLength(1);
  });

  it('never opens a second replacement of one instance, and refuses a placement on a node cordoned since', async () => {
    // A stale decision (from before the replacement above) asks for another replacement of web-1.
    const stale = { create: [{ deploymentId: 'dep-web', nodeId: 'g-d', replaces: 'web-1' }], publish: [], stop: [], remove: [], drains: [], events: [], nodeStatus: [] };
    const before = await listInstances(t.db);
    await expect(applyFleetDecision(t.db, stale, newId, 'reconciler')).rejects.toBeInstanceOf(FleetConflictError);
    await setCordoned(t.db, 'g-d', true);
    const toCordoned = { ...stale, create: [{ deploymentId: 'dep-api', nodeId: 'g-d', replaces: null }] };
    await expect(applyFleetDecision(t.db, toCordoned, newId, 'reconciler')).rejects.toBeInstanceOf(FleetConflictError);
    expect(await listInstances(t.db)).toEqual(before);
    await setCordoned(t.db, 'g-d', false);
  });

  it('does not mark a node down when a heartbeat landed after the decision, and records no node.down for it', async () => {
    await t.db.query(`UPDATE nodes SET last_heartbeat_at = now() - interval '2 minutes' WHERE id = 'g-d'`);
    const { snapshot, now } = await loadLivenessSnapshot(t.db, { graceMs: 60_000, touched: [] });
    const decision = reconcileLiveness(snapshot, now, OPTIONS);
    expect(decision.nodeStatus).toEqual([{ nodeId: 'g-d', status: 'down' }]);
    await recordHeartbeats(t.db, [heartbeat('g-d')]);
    const after = await lastEventId();
    const actions = { create: [], publish: [], stop: [], remove: [], drains: [], ...decision };
    const { statusChanged } = await applyFleetDecision(t.db, actions, newId, 'reconciler', undefined, { nodes: snapshot.nodes, drains: [] });
    expect(statusChanged).toEqual([]);
    expect((await findNode(t.db, 'g-d'))?.status).toBe('ready');
    expect((await listEvents(t.db, { after })).map((e) => e.kind)).not.toContain('node.down');
  });
});
