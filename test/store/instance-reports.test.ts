// Volume and activity reported by agents in their heartbeats (issue 12, item 4), beside the
// values storage and backup systems set through the API: the agent's report replaces its last,
// its silence clears only what it set, and an unexpired API value wins over it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ActualInstance } from '../../src/domain/protocol.js';
import { insertDeployment } from '../../src/store/deployments.js';
import { findInstance, insertInstances, reportActivity, reportVolume } from '../../src/store/instances.js';
import { loadPlanSnapshot } from '../../src/store/plan-snapshot.js';
import { registerNode, writeHeartbeats } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, registerRequest, running, WORKLOAD } from '../support/store-fixtures.js';

describe(`instance volume and activity from heartbeats on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let node: string;
  let other: string;
  const beat = (instances: ActualInstance[], nodeId = node) => writeHeartbeats(t.db, [heartbeat(nodeId, instances)]);
  const reported = (extra: Partial<ActualInstance>): ActualInstance => ({ ...running('ir-1', 31001), ...extra });
  const view = async () => {
    const i = await findInstance(t.db, 'ir-1');
    return { volume: i?.volume, volume_source: i?.volume_source, activity: i?.activity, activity_source: i?.activity_source };
  };

  beforeAll(async () => {
    t = await createTestDb();
    node = (await registerNode(t.db, registerRequest('ir-a'), 'ir-a-id')).id;
    other = (await registerNode(t.db, registerRequest('ir-b'), 'ir-b-id')).id;
    await insertDeployment(t.db, 'dep-ir', { name: 'ir', replicas: 1, min_available: 0, workload: WORKLOAD });
    await insertInstances(t.db, [{ id: 'ir-1', deploymentId: 'dep-ir', nodeId: node, replaces: null }]);
  });
  afterAll(async () => t?.cleanup());

  it("stores the agent's report, replaces it with the next one and clears it when the agent stops reporting", async () => {
    await beat([running('ir-1', 31001)]);
    expect(await view()).toEqual({ volume: null, volume_source: null, activity: null, activity_source: null });

    const first = await beat([reported({ volume: { replicas: 3, healthy_replicas: 1 }, activity: 'backup' })]);
    expect(first.changed.has(node)).toBe(true);
    expect(await view()).toEqual({ volume: { replicas: 3, healthy_replicas: 1 }, volume_source: 'agent', activity: 'backup', activity_source: 'agent' });
    expect(await findInstance(t.db, 'ir-1')).toMatchObject({ volume_expires_at: null, activity_expires_at: null });

    // The same report again writes nothing (no wake-up for an unchanged heartbeat).
    const again = await beat([reported({ volume: { replicas: 3, healthy_replicas: 1 }, activity: 'backup' })]);
    expect(again.changed.has(node)).toBe(false);

    await beat([reported({ volume: { replicas: 3, healthy_replicas: 3 }, activity: 'snapshot' })]);
    expect(await view()).toMatchObject({ volume: { replicas: 3, healthy_replicas: 3 }, activity: 'snapshot' });

    // Preflight reads what the agent reported.
    const plan = JSON.parse((await loadPlanSnapshot(t.db, 'tool')).instances.rows) as unknown[][];
    expect(plan.find((i) => i[0] === 'ir-1')?.slice(5)).toEqual([{ replicas: 3, healthy_replicas: 3 }, null, 'snapshot', null]);

    const cleared = await beat([running('ir-1', 31001)]);
    expect(cleared.changed.has(node)).toBe(true);
    expect(await view()).toEqual({ volume: null, volume_source: null, activity: null, activity_source: null });
  });

  it('keeps a value set through the API while it has not expired: the agent neither clears nor overwrites it', async () => {
    await reportVolume(t.db, 'ir-1', { replicas: 2, healthy_replicas: 1 }, 60_000);
    await reportActivity(t.db, 'ir-1', 'restore', 60_000);
    const api = { volume: { replicas: 2, healthy_replicas: 1 }, volume_source: 'api', activity: 'restore', activity_source: 'api' };
    expect(await view()).toEqual(api);

    await beat([running('ir-1', 31001)]);
    expect(await view()).toEqual(api);
    await beat([reported({ volume: { replicas: 5, healthy_replicas: 5 }, activity: 'backup' })]);
    expect(await view()).toEqual(api);
    expect((await findInstance(t.db, 'ir-1'))?.volume_expires_at).not.toBeNull();

    // Cleared through the API: the agent's report counts again from its next heartbeat.
    await reportVolume(t.db, 'ir-1', null, 0);
    await reportActivity(t.db, 'ir-1', null, 0);
    await beat([reported({ volume: { replicas: 5, healthy_replicas: 5 }, activity: 'backup' })]);
    expect(await view()).toEqual({ volume: { replicas: 5, healthy_replicas: 5 }, volume_source: 'agent', activity: 'backup', activity_source: 'agent' });

    // An API report replaces the agent's; once it expires the agent's report takes over.
    await reportActivity(t.db, 'ir-1', 'snapshot', 1);
    await new Promise((r) => setTimeout(r, 20));
    expect((await findInstance(t.db, 'ir-1'))?.activity).toBeNull();
    await beat([reported({ volume: { replicas: 5, healthy_replicas: 5 }, activity: 'backup' })]);
    expect(await view()).toMatchObject({ activity: 'backup', activity_source: 'agent' });
    expect((await findInstance(t.db, 'ir-1'))?.activity_expires_at).toBeNull();

    // An expired API value the agent does not repeat is cleared.
    await reportVolume(t.db, 'ir-1', { replicas: 2, healthy_replicas: 1 }, 1);
    await new Promise((r) => setTimeout(r, 20));
    await beat([reported({ activity: 'backup' })]);
    const row = (await t.db.query<{ volume: unknown; volume_source: unknown }>('SELECT volume, volume_source FROM instances WHERE id = $1', ['ir-1']))[0];
    expect(row).toEqual({ volume: null, volume_source: null });
  });

  it('ignores a report for an instance of another node', async () => {
    await beat([running('ir-1', 31001)]);
    await beat([reported({ activity: 'backup' })], other);
    expect(await view()).toMatchObject({ activity: null, activity_source: null });
  });
});
