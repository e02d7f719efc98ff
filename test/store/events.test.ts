import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendEvents, listEvents } from '../../src/store/events.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

describe(`store/events on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  it('appends events with the change they describe, and drops them when that change rolls back', async () => {
    await t.db.transaction(async (tx) => {
      await tx.query(`INSERT INTO deployments (id, name, replicas, min_available, workload) VALUES ('d1', 'one', 1, 0, '{"command":"x"}')`);
      await appendEvents(tx, [
        { kind: 'deployment.created', actor: 'alice', data: { deployment_id: 'd1', replicas: 1 } },
        { kind: 'node.cordoned', actor: 'alice', nodeId: 'n1', instanceId: 'i1', rolloutId: 'r1' },
      ]);
    });
    await expect(
      t.db.transaction(async (tx) => {
        await tx.query(`INSERT INTO deployments (id, name, replicas, min_available, workload) VALUES ('d2', 'two', 1, 0, '{"command":"x"}')`);
        await appendEvents(tx, [{ kind: 'deployment.created', actor: 'bob', data: { deployment_id: 'd2' } }]);
        throw new Error('abort the change');
      }),
    ).rejects.toThrow('abort the change');
    await appendEvents(t.db, []);

    const events = await listEvents(t.db);
    expect(events.map(({ at: _at, id: _id, ...rest }) => rest)).toEqual([
      { kind: 'deployment.created', rollout_id: null, node_id: null, instance_id: null, actor: 'alice', data: { deployment_id: 'd1', replicas: 1 } },
      { kind: 'node.cordoned', rollout_id: 'r1', node_id: 'n1', instance_id: 'i1', actor: 'alice', data: {} },
    ]);
    expect(typeof events[0]?.id).toBe('number');
    expect((events[1]?.id as number) > (events[0]?.id as number)).toBe(true);
    expect(events[0]?.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(await t.db.query(`SELECT id FROM deployments WHERE id = 'd2'`)).toEqual([]);
  });

  it('keeps concurrent appends whole and in id order', async () => {
    const before = await listEvents(t.db);
    const after = before.at(-1)?.id ?? 0;
    await Promise.all(
      Array.from({ length: 8 }, (_, writer) =>
        t.db.transaction(async (tx) =>
          appendEvents(
            tx,
            Array.from({ length: 5 }, (_, n) => ({ kind: 'test.concurrent', actor: `writer-${writer}`, data: { writer, n } })),
          ),
        ),
      ),
    );
    const added = await listEvents(t.db, { after });
    expect(added).toHaveLength(40);
    const ids = added.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    // Each writer's batch is contiguous: the advisory lock serializes whole appends.
    for (let writer = 0; writer < 8; writer++) {
      const positions = added.flatMap((e, i) => (e.actor === `writer-${writer}` ? [i] : []));
      expect(positions).toHaveLength(5);
      expect((positions.at(-1) as number) - (positions[0] as number)).toBe(4);
      expect(added.filter((e) => e.actor === `writer-${writer}`).map((e) => e.data.n)).toEqual([0, 1, 2, 3, 4]);
    }
  });

  it('pages with after and limit, and filters by kind prefix, node and rollout', async () => {
    await appendEvents(t.db, [
      { kind: 'rollout.started', actor: 'op', rolloutId: 'r-9' },
      { kind: 'rollout.batch_started', actor: 'op', rolloutId: 'r-9', nodeId: 'n-7' },
      { kind: 'node.drained', actor: 'reconciler', nodeId: 'n-7' },
      { kind: 'rollouts.other', actor: 'op' },
    ]);
    const all = await listEvents(t.db);
    const firstId = all[0]?.id as number;
    expect((await listEvents(t.db, { after: firstId })).map((e) => e.id)).toEqual(all.slice(1).map((e) => e.id));
    expect((await listEvents(t.db, { limit: 2 })).map((e) => e.id)).toEqual(all.slice(0, 2).map((e) => e.id));
    expect(await listEvents(t.db, { after: all.at(-1)?.id as number })).toEqual([]);

    expect((await listEvents(t.db, { kindPrefix: 'rollout.' })).map((e) => e.kind)).toEqual(['rollout.started', 'rollout.batch_started']);
    expect((await listEvents(t.db, { kindPrefix: 'rollout' })).map((e) => e.kind)).toEqual([
      'rollout.started',
      'rollout.batch_started',
      'rollouts.other',
    ]);
    expect((await listEvents(t.db, { nodeId: 'n-7' })).map((e) => e.kind)).toEqual(['rollout.batch_started', 'node.drained']);
    expect((await listEvents(t.db, { rolloutId: 'r-9', nodeId: 'n-7' })).map((e) => e.kind)).toEqual(['rollout.batch_started']);
    expect((await listEvents(t.db, { kindPrefix: 'node.', nodeId: 'n1' })).map((e) => e.kind)).toEqual(['node.cordoned']);
  });

  it('treats %, _ and \\ in a kind prefix as plain characters', async () => {
    const { id: after } = (await listEvents(t.db)).at(-1) as { id: number };
    await appendEvents(t.db, [
      { kind: 'lit%percent', actor: 'x' },
      { kind: 'litXpercent', actor: 'x' },
      { kind: 'lit_under', actor: 'x' },
      { kind: 'litZunder', actor: 'x' },
      { kind: 'lit\\slash', actor: 'x' },
      { kind: 'litslash', actor: 'x' },
    ]);
    const kinds = async (kindPrefix: string) => (await listEvents(t.db, { after, kindPrefix })).map((e) => e.kind);
    expect(await kinds('lit%')).toEqual(['lit%percent']);
    expect(await kinds('lit_')).toEqual(['lit_under']);
    expect(await kinds('lit\\')).toEqual(['lit\\slash']);
    expect(await kinds('%')).toEqual([]);
    expect(await kinds('_')).toEqual([]);
    expect(await kinds('lit')).toHaveLength(6);
    expect(await kinds('')).toHaveLength(6);
  });
});
