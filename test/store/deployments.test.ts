import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findDeployment, insertDeployment, listDeployments, updateDeploymentReplicas } from '../../src/store/deployments.js';
import { insertInstances, publishInstances, stopInstances } from '../../src/store/instances.js';
import { recordHeartbeats, registerNode, setNodeStatuses } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, registerRequest, running, WORKLOAD } from '../support/store-fixtures.js';

describe(`store/deployments on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  it('inserts a deployment once per name and reads it back by id or name', async () => {
    expect(await insertDeployment(t.db, 'dep-web', { name: 'web', replicas: 3, min_available: 2, workload: WORKLOAD })).toBe(true);
    expect(
      await insertDeployment(t.db, 'dep-web-2', {
        name: 'web',
        replicas: 9,
        min_available: 0,
        workload: { command: 'other' },
      }),
    ).toBe(false);
    const rows = await t.db.query('SELECT id, replicas FROM deployments WHERE name = $1', ['web']);
    expect(rows).toEqual([{ id: 'dep-web', replicas: 3 }]);

    const byId = await findDeployment(t.db, 'dep-web');
    expect(byId).toMatchObject({
      id: 'dep-web',
      name: 'web',
      replicas: 3,
      min_available: 2,
      workload: WORKLOAD,
      node_selector: null,
      healthy_instances: 0,
      instances: 0,
    });
    expect(byId?.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(await findDeployment(t.db, 'web')).toEqual(byId);
    expect(await findDeployment(t.db, 'nope')).toBeUndefined();
  });

  it('keeps a node selector and lists deployments by name', async () => {
    await insertDeployment(t.db, 'dep-pinned', {
      name: 'db-primary',
      replicas: 1,
      min_available: 1,
      workload: WORKLOAD,
      node_selector: { hostname: 'dn-1', labels: { disk: 'ssd' } },
    });
    await insertDeployment(t.db, 'dep-api', { name: 'api', replicas: 0, min_available: 0, workload: WORKLOAD, node_selector: null });
    const list = await listDeployments(t.db);
    expect(list.map((d) => d.name)).toEqual(['api', 'db-primary', 'web']);
    expect(list.find((d) => d.name === 'db-primary')?.node_selector).toEqual({ hostname: 'dn-1', labels: { disk: 'ssd' } });
    expect(list.find((d) => d.name === 'api')?.node_selector).toBeNull();
  });

  it('counts published healthy instances on live nodes, and wanted instances without replacements', async () => {
    const a = (await registerNode(t.db, registerRequest('dn-1'), 'dn-1-id')).id;
    const b = (await registerNode(t.db, registerRequest('dn-2'), 'dn-2-id')).id;
    await insertInstances(t.db, [
      { id: 'web-1', deploymentId: 'dep-web', nodeId: a, replaces: null },
      { id: 'web-2', deploymentId: 'dep-web', nodeId: b, replaces: null },
      { id: 'web-3', deploymentId: 'dep-web', nodeId: b, replaces: null },
      { id: 'web-1-next', deploymentId: 'dep-web', nodeId: b, replaces: 'web-1' },
    ]);
    expect(await findDeployment(t.db, 'web')).toMatchObject({ instances: 3, healthy_instances: 0 });

    // Healthy but not yet published: not an endpoint, so not counted.
    await recordHeartbeats(t.db, [heartbeat(a, [running('web-1', 30001)]), heartbeat(b, [running('web-2', 30002), running('web-3', 30003)])]);
    expect(await findDeployment(t.db, 'web')).toMatchObject({ healthy_instances: 0 });

    await publishInstances(t.db, ['web-1', 'web-2', 'web-3']);
    expect(await findDeployment(t.db, 'web')).toMatchObject({ instances: 3, healthy_instances: 3 });

    // A stopped one is neither wanted nor healthy; a down node's instances are not healthy.
    await stopInstances(t.db, [{ instanceId: 'web-3', restartOnEnable: false }]);
    expect(await findDeployment(t.db, 'web')).toMatchObject({ instances: 2, healthy_instances: 2 });
    await setNodeStatuses(t.db, [{ nodeId: a, status: 'down' }]);
    expect(await findDeployment(t.db, 'web')).toMatchObject({ instances: 2, healthy_instances: 1 });
  });

  it('updates replicas, budget, workload and selector in place', async () => {
    await updateDeploymentReplicas(t.db, 'dep-api', {
      name: 'api',
      replicas: 5,
      min_available: 3,
      workload: { command: 'api-server', args: ['--port', '$PORT'] },
      node_selector: { region: 'eu-west' },
    });
    expect(await findDeployment(t.db, 'api')).toMatchObject({
      replicas: 5,
      min_available: 3,
      workload: { command: 'api-server', args: ['--port', '$PORT'] },
      node_selector: { region: 'eu-west' },
    });
    await updateDeploymentReplicas(t.db, 'dep-api', { name: 'api', replicas: 1, min_available: 0, workload: WORKLOAD });
    expect(await findDeployment(t.db, 'api')).toMatchObject({ replicas: 1, min_available: 0, node_selector: null });
  });
});
