import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertDeployment } from '../../src/store/deployments.js';
import { insertInstances } from '../../src/store/instances.js';
import {
  bumpGenerations,
  findNode,
  listNodes,
  nodeGenerations,
  recordHeartbeats,
  registerNode,
  setCordoned,
  setNodeStatuses,
} from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, instanceRow, registerRequest, running, stopped, WORKLOAD } from '../support/store-fixtures.js';

describe(`store/nodes on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  it('gives the same hostname the same id on every registration and updates what the agent reports', async () => {
    const first = await registerNode(t.db, registerRequest('reg-1', { max_instances: 2, agent_version: '1.0.0' }), 'id-reg-1');
    expect(first.id).toBe('id-reg-1');
    const again = await registerNode(
      t.db,
      registerRequest('reg-1', { region: 'eu-west', max_instances: 6, agent_version: '1.1.0', labels: { disk: 'ssd' }, agent_url: 'http://10.0.0.7:7070' }),
      'id-other',
    );
    expect(again.id).toBe('id-reg-1');
    const rows = await t.db.query('SELECT id FROM nodes WHERE hostname = $1', ['reg-1']);
    expect(rows).toHaveLength(1);
    const node = await findNode(t.db, 'reg-1');
    expect(node).toMatchObject({
      id: 'id-reg-1',
      region: 'eu-west',
      max_instances: 6,
      agent_version: '1.1.0',
      labels: { disk: 'ssd' },
      agent_url: 'http://10.0.0.7:7070',
      status: 'ready',
    });
  });

  it('reuses the id an agent remembers when its hostname is new to the database', async () => {
    const { id } = await registerNode(t.db, registerRequest('reg-remembered', { node_id: 'remembered-id' }), 'fresh-id');
    expect(id).toBe('remembered-id');
    expect((await findNode(t.db, 'reg-remembered'))?.id).toBe('remembered-id');
    expect(await findNode(t.db, 'fresh-id')).toBeUndefined();
    // The hostname stays the identity: a known hostname keeps its id whatever the agent claims.
    const again = await registerNode(t.db, registerRequest('reg-remembered', { node_id: 'another-id' }), 'fresh-id-2');
    expect(again.id).toBe('remembered-id');
  });

  it('writes a batch of heartbeats to the nodes, and only to instances of the reporting node', async () => {
    const a = (await registerNode(t.db, registerRequest('hb-a'), 'hb-a-id')).id;
    const b = (await registerNode(t.db, registerRequest('hb-b'), 'hb-b-id')).id;
    const idle = (await registerNode(t.db, registerRequest('hb-idle'), 'hb-idle-id')).id;
    await insertDeployment(t.db, 'dep-hb', { name: 'hb', replicas: 2, min_available: 1, workload: WORKLOAD });
    await insertInstances(t.db, [
      { id: 'inst-a', deploymentId: 'dep-hb', nodeId: a, replaces: null },
      { id: 'inst-b', deploymentId: 'dep-hb', nodeId: b, replaces: null },
    ]);
    // Push every heartbeat into the past so "it was updated" is visible whatever the clock resolution.
    await t.db.query(`UPDATE nodes SET last_heartbeat_at = now() - interval '1 hour' WHERE id = ANY($1::text[])`, [[a, b, idle]]);
    const [before] = await t.db.query<{ at: Date }>('SELECT last_heartbeat_at AS at FROM nodes WHERE id = $1', [a]);

    await recordHeartbeats(t.db, [
      // Node a also claims b's instance: that part of its report must be ignored.
      heartbeat(a, [running('inst-a', 31001), { id: 'inst-b', status: 'failed', healthy: false, pid: null, port: null, message: 'spoofed' }], {
        agentVersion: '2.0.0',
        components: { 'node-agent': '2.0.0', nginx: '1.25' },
      }),
      heartbeat(b, [], { protocolVersion: 2 }),
    ]);

    const rows = await t.db.query<{ id: string; agent_version: string; protocol_version: number; components: Record<string, string>; stale: boolean }>(
      `SELECT id, agent_version, protocol_version, components, last_heartbeat_at < now() - interval '30 minutes' AS stale
         FROM nodes WHERE id = ANY($1::text[]) ORDER BY id`,
      [[a, b, idle]],
    );
    expect(rows).toEqual([
      { id: a, agent_version: '2.0.0', protocol_version: 1, components: { 'node-agent': '2.0.0', nginx: '1.25' }, stale: false },
      { id: b, agent_version: '1.0.0', protocol_version: 2, components: { 'node-agent': '1.0.0' }, stale: false },
      { id: idle, agent_version: '1.0.0', protocol_version: 1, components: {}, stale: true },
    ]);
    const [after] = await t.db.query<{ at: Date }>('SELECT last_heartbeat_at AS at FROM nodes WHERE id = $1', [a]);
    expect(new Date(after?.at as Date).getTime()).toBeGreaterThan(new Date(before?.at as Date).getTime());

    expect(await instanceRow(t.db, 'inst-a')).toMatchObject({ status: 'running', healthy: true, pid: 41001, port: 31001, message: null });
    expect(await instanceRow(t.db, 'inst-b')).toMatchObject({ status: 'pending', healthy: false, pid: null, port: null, message: null });

    // b reports its own instance: now it changes.
    await recordHeartbeats(t.db, [heartbeat(b, [{ ...stopped('inst-b'), status: 'failed', message: 'exit 1' }])]);
    expect(await instanceRow(t.db, 'inst-b')).toMatchObject({ status: 'failed', healthy: false, message: 'exit 1' });
    // An empty batch writes nothing and does not fail.
    await expect(recordHeartbeats(t.db, [])).resolves.toBeUndefined();
  });

  it('lists nodes with active instances and available capacity, filtered and ordered by region then hostname', async () => {
    const x = (await registerNode(t.db, registerRequest('cap-x', { region: 'ap-south', max_instances: 3 }), 'cap-x-id')).id;
    const y = (await registerNode(t.db, registerRequest('cap-y', { region: 'ap-south', max_instances: 1 }), 'cap-y-id')).id;
    await insertDeployment(t.db, 'dep-cap', { name: 'cap', replicas: 4, min_available: 0, workload: WORKLOAD });
    await insertInstances(t.db, [
      { id: 'cap-1', deploymentId: 'dep-cap', nodeId: x, replaces: null },
      { id: 'cap-2', deploymentId: 'dep-cap', nodeId: x, replaces: null },
      { id: 'cap-3', deploymentId: 'dep-cap', nodeId: y, replaces: null },
      { id: 'cap-4', deploymentId: 'dep-cap', nodeId: y, replaces: null },
    ]);
    // A stopped instance no longer takes a slot.
    await recordHeartbeats(t.db, [heartbeat(x, [stopped('cap-2')])]);

    const south = await listNodes(t.db, { region: 'ap-south' });
    expect(south.map((n) => [n.hostname, n.active_instances, n.max_instances, n.available_capacity])).toEqual([
      ['cap-x', 1, 3, 2],
      ['cap-y', 2, 1, 0], // over-full never shows negative room
    ]);
    expect(south[0]).toMatchObject({ role: 'worker', status: 'ready', draining: false, cordoned: false, schedulable: true, drain: null });

    const all = await listNodes(t.db);
    const order = all.map((n) => `${n.region}/${n.hostname}`);
    expect(order).toEqual([...order].sort());
    expect(all.length).toBeGreaterThan(south.length);

    await setNodeStatuses(t.db, [{ nodeId: y, status: 'down' }]);
    expect((await listNodes(t.db, { status: 'down' })).map((n) => n.id)).toEqual([y]);
    expect((await listNodes(t.db, { region: 'ap-south', status: 'ready' })).map((n) => n.id)).toEqual([x]);
    expect(await listNodes(t.db, { region: 'nowhere' })).toEqual([]);
  });

  it('finds a node by id or hostname, preferring the id when one node is named like another one is numbered', async () => {
    const byId = await findNode(t.db, 'cap-x-id');
    const byName = await findNode(t.db, 'cap-x');
    expect(byId?.hostname).toBe('cap-x');
    expect(byName?.id).toBe('cap-x-id');
    expect(byName).toEqual(byId);
    expect(await findNode(t.db, 'no-such-node')).toBeUndefined();

    await registerNode(t.db, registerRequest('cap-x-id'), 'confusing-id');
    expect((await findNode(t.db, 'cap-x-id'))?.hostname).toBe('cap-x');
    expect((await findNode(t.db, 'confusing-id'))?.hostname).toBe('cap-x-id');
  });

  it('cordons, sets statuses and bumps generations once per node', async () => {
    const id = (await registerNode(t.db, registerRequest('gen-1'), 'gen-1-id')).id;
    await setCordoned(t.db, id, true);
    await setNodeStatuses(t.db, [{ nodeId: id, status: 'cordoned' }]);
    expect(await findNode(t.db, id)).toMatchObject({ cordoned: true, status: 'cordoned', schedulable: false });

    const before = (await nodeGenerations(t.db)).get(id) as number;
    await bumpGenerations(t.db, [id, id, 'not-a-node']);
    await bumpGenerations(t.db, []);
    expect((await nodeGenerations(t.db)).get(id)).toBe(before + 1);

    await setCordoned(t.db, id, false);
    await setNodeStatuses(t.db, []);
    expect(await findNode(t.db, id)).toMatchObject({ cordoned: false, status: 'cordoned' });
  });
});
