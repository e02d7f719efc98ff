import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstallReport } from '../../src/domain/protocol.js';
import { listEvents } from '../../src/store/events.js';
import { findNode, recordHeartbeats, registerNode } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, registerRequest } from '../support/store-fixtures.js';

// An agent heartbeats on a timer and at once on each install phase change, so heartbeats of one
// node can arrive out of order. A late one must not take the node back to the version it left:
// a rollout's health gate would read that as the agent reverting.
describe(`store: heartbeats that arrive out of order on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  const install = (phase: InstallReport['phase'], at: string): InstallReport => ({
    component: 'web',
    version: '2.1.0',
    previous_version: '1.0.0',
    phase,
    updated_at: at,
  });

  it('keeps the newer components and install phase when an older heartbeat arrives after a newer one', async () => {
    const node = (await registerNode(t.db, registerRequest('late-1'), 'late-1')).id;
    const assessing = heartbeat(node, [], { components: { 'node-agent': '1.0.0', web: '1.0.0' }, installs: [install('assessing', '2026-01-01T00:00:01.000Z')] });
    const done = heartbeat(node, [], { components: { 'node-agent': '1.0.0', web: '2.1.0' }, installs: [install('done', '2026-01-01T00:00:02.000Z')] });

    await recordHeartbeats(t.db, [done]);
    await recordHeartbeats(t.db, [assessing]);
    await recordHeartbeats(t.db, [assessing]);
    const view = await findNode(t.db, node);
    expect(view?.components).toEqual({ 'node-agent': '1.0.0', web: '2.1.0' });
    expect(view?.installs).toEqual([expect.objectContaining({ version: '2.1.0', phase: 'done' })]);
    expect((await listEvents(t.db, { nodeId: node, kindPrefix: 'node.install' })).map((e) => e.data.phase)).toEqual(['done']);

    // Heartbeats in order still move the node, including back to an older version after a revert.
    const reverted = heartbeat(node, [], { components: { 'node-agent': '1.0.0', web: '1.0.0' }, installs: [install('reverted', '2026-01-01T00:00:03.000Z')] });
    await recordHeartbeats(t.db, [reverted]);
    expect((await findNode(t.db, node))?.components).toEqual({ 'node-agent': '1.0.0', web: '1.0.0' });
    // A heartbeat without install reports cannot be judged and is taken as it is.
    await recordHeartbeats(t.db, [heartbeat(node, [], { components: { 'node-agent': '1.0.1' } })]);
    expect((await findNode(t.db, node))?.components).toEqual({ 'node-agent': '1.0.1' });
  });
});
