import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BootSlotsReport } from '../../src/domain/protocol.js';
import { findNode, writeHeartbeats, registerNode } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, registerRequest } from '../support/store-fixtures.js';

describe(`store: a node's A/B boot slots from heartbeats on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  it('stores the reported slots in the batched heartbeat write, keeps them when a heartbeat has none, and a change counts as a change', async () => {
    const a = (await registerNode(t.db, registerRequest('slots-a'), 'slots-a-id')).id;
    const b = (await registerNode(t.db, registerRequest('slots-b'), 'slots-b-id')).id;
    expect((await findNode(t.db, a))?.slots).toBeNull();
    const armed: BootSlotsReport = { a: { version: '1.0.0' }, b: { version: '2.0.0' }, active: 'a', next: 'b', tries_left: 3 };
    const first = await writeHeartbeats(t.db, [heartbeat(a, [], { slots: armed }), heartbeat(b)]);
    expect(first.changed.has(a)).toBe(true);
    expect((await findNode(t.db, a))?.slots).toEqual(armed);
    expect((await findNode(t.db, b))?.slots).toBeNull();

    // The same report again changes nothing; one without slots keeps the stored ones.
    const again = await writeHeartbeats(t.db, [heartbeat(a, [], { slots: armed })]);
    expect(again.changed.has(a)).toBe(false);
    await writeHeartbeats(t.db, [heartbeat(a)]);
    expect((await findNode(t.db, a))?.slots).toEqual(armed);

    const booted: BootSlotsReport = { ...armed, active: 'b', tries_left: 2 };
    const third = await writeHeartbeats(t.db, [heartbeat(a, [], { slots: booted })]);
    expect(third.changed.has(a)).toBe(true);
    expect((await findNode(t.db, a))?.slots).toEqual(booted);
  });
});
