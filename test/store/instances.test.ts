import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertDeployment } from '../../src/store/deployments.js';
import {
  desiredInstancesForNode,
  findInstance,
  insertInstances,
  listInstances,
  publishInstances,
  removeInstances,
  restartParkedInstances,
  stopInstances,
} from '../../src/store/instances.js';
import { recordHeartbeats, registerNode, setNodeStatuses } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, instanceRow, registerRequest, running, stopped, WORKLOAD } from '../support/store-fixtures.js';

describe(`store/instances on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let a: string;
  let b: string;
  beforeAll(async () => {
    t = await createTestDb();
    a = (await registerNode(t.db, registerRequest('in-a', { agent_url: 'http://10.1.2.3:7070' }), 'in-a-id')).id;
    b = (await registerNode(t.db, registerRequest('in-b', { region: 'eu-west' }), 'in-b-id')).id;
    await insertDeployment(t.db, 'dep-web', { name: 'web', replicas: 2, min_available: 1, workload: WORKLOAD });
    await insertDeployment(t.db, 'dep-pin', { name: 'pinned', replicas: 1, min_available: 0, workload: WORKLOAD, node_selector: { hostname: 'in-b' } });
  });
  afterAll(async () => t.cleanup());

  it('inserts instances and shows them with their node, deployment and url', async () => {
    await insertInstances(t.db, [
      { id: 'i-web-a', deploymentId: 'dep-web', nodeId: a, replaces: null },
      { id: 'i-web-b', deploymentId: 'dep-web', nodeId: b, replaces: null },
      { id: 'i-pin-b', deploymentId: 'dep-pin', nodeId: b, replaces: null },
    ]);
    await insertInstances(t.db, []);
    expect(await instanceRow(t.db, 'i-web-a')).toMatchObject({
      desired: 'running',
      status: 'pending',
      healthy: false,
      published: false,
      replaces: null,
      restart_on_enable: false,
    });

    await recordHeartbeats(t.db, [heartbeat(a, [running('i-web-a', 30001)]), heartbeat(b, [running('i-web-b', 30002)])]);
    const webA = await findInstance(t.db, 'i-web-a');
    expect(webA).toMatchObject({
      deployment_id: 'dep-web',
      deployment: 'web',
      node_id: a,
      hostname: 'in-a',
      region: 'us-east',
      healthy: true,
      migratable: true,
      pid: 40001,
      port: 30001,
      // Instances listen on their agent's address.
      url: 'http://10.1.2.3:30001',
    });
    expect((await findInstance(t.db, 'i-web-b'))?.url).toBe('http://127.0.0.1:30002');
    expect(await findInstance(t.db, 'i-pin-b')).toMatchObject({ url: null, migratable: false, healthy: false });
    expect(await findInstance(t.db, 'nope')).toBeUndefined();

    expect((await listInstances(t.db)).map((i) => i.id)).toEqual(['i-pin-b', 'i-web-a', 'i-web-b']);
    expect((await listInstances(t.db, { nodeId: b })).map((i) => i.id)).toEqual(['i-pin-b', 'i-web-b']);
    expect((await listInstances(t.db, { deploymentId: 'dep-web' })).map((i) => i.id)).toEqual(['i-web-a', 'i-web-b']);
    expect((await listInstances(t.db, { nodeId: b, deploymentId: 'dep-web' })).map((i) => i.id)).toEqual(['i-web-b']);

    // A node that stops heartbeating takes its instances' health with it.
    await setNodeStatuses(t.db, [{ nodeId: a, status: 'down' }]);
    expect((await findInstance(t.db, 'i-web-a'))?.healthy).toBe(false);
    await setNodeStatuses(t.db, [{ nodeId: a, status: 'ready' }]);
    expect((await findInstance(t.db, 'i-web-a'))?.healthy).toBe(true);
  });

  it('publishes instances, turning a replacement into the instance', async () => {
    await insertInstances(t.db, [{ id: 'i-web-a2', deploymentId: 'dep-web', nodeId: b, replaces: 'i-web-a' }]);
    await publishInstances(t.db, ['i-web-a', 'i-web-a2']);
    await publishInstances(t.db, []);
    expect(await instanceRow(t.db, 'i-web-a')).toMatchObject({ published: true, replaces: null });
    expect(await instanceRow(t.db, 'i-web-a2')).toMatchObject({ published: true, replaces: null });
    expect(await instanceRow(t.db, 'i-web-b')).toMatchObject({ published: false });
  });

  it('stops instances by withdrawing them first, and returns them with their nodes and whether they were endpoints', async () => {
    const stopped = await stopInstances(t.db, [
      { instanceId: 'i-web-a', restartOnEnable: false },
      { instanceId: 'i-pin-b', restartOnEnable: true },
    ]);
    expect(stopped.map((s) => s.node_id).sort()).toEqual([a, b].sort());
    expect(stopped.find((s) => s.id === 'i-web-a')).toMatchObject({ deployment_id: 'dep-web', was_published: true });
    expect(await stopInstances(t.db, [])).toEqual([]);
    expect(await instanceRow(t.db, 'i-web-a')).toMatchObject({ desired: 'stopped', published: false, replaces: null, restart_on_enable: false });
    expect(await instanceRow(t.db, 'i-pin-b')).toMatchObject({ desired: 'stopped', restart_on_enable: true });
  });

  it('tells each agent the instances it must converge to, until a stopped one is reported stopped', async () => {
    const onA = await desiredInstancesForNode(t.db, a);
    expect(onA).toEqual([{ id: 'i-web-a', deployment_id: 'dep-web', deployment: 'web', desired: 'stopped', workload: WORKLOAD }]);
    const onB = await desiredInstancesForNode(t.db, b);
    expect(onB.map((i) => [i.id, i.desired])).toEqual([
      ['i-pin-b', 'stopped'],
      ['i-web-a2', 'running'],
      ['i-web-b', 'running'],
    ]);

    await recordHeartbeats(t.db, [heartbeat(a, [stopped('i-web-a')]), heartbeat(b, [stopped('i-pin-b'), running('i-web-b', 30002)])]);
    expect(await desiredInstancesForNode(t.db, a)).toEqual([]);
    expect((await desiredInstancesForNode(t.db, b)).map((i) => i.id)).toEqual(['i-web-a2', 'i-web-b']);
    expect(await desiredInstancesForNode(t.db, 'not-a-node')).toEqual([]);
  });

  it('removes only rows that are meant to be stopped', async () => {
    await removeInstances(t.db, ['i-web-a', 'i-web-b']);
    await removeInstances(t.db, []);
    expect(await instanceRow(t.db, 'i-web-a')).toBeUndefined();
    expect(await instanceRow(t.db, 'i-web-b')).toMatchObject({ desired: 'running' });
  });

  it('restarts the parked instances of one node and nothing else', async () => {
    expect(await restartParkedInstances(t.db, a)).toEqual([]);
    expect(await restartParkedInstances(t.db, b)).toEqual(['i-pin-b']);
    expect(await instanceRow(t.db, 'i-pin-b')).toMatchObject({ desired: 'running', restart_on_enable: false, status: 'pending', healthy: false });
    expect(await instanceRow(t.db, 'i-web-b')).toMatchObject({ desired: 'running', status: 'running', healthy: true });
    expect(await restartParkedInstances(t.db, b)).toEqual([]);
    expect((await desiredInstancesForNode(t.db, b)).map((i) => [i.id, i.desired])).toEqual([
      ['i-pin-b', 'running'],
      ['i-web-a2', 'running'],
      ['i-web-b', 'running'],
    ]);
  });
});
