import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { averageNodeSeconds } from '../../src/store/rollout-history.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

describe(`store/rollout-history on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => t.cleanup());

  async function rollout(id: string, component: string) {
    await t.db.query(
      `INSERT INTO rollouts (id, name, component, version, spec_input, spec, status, drain_mode, batch_count, plan, preflight, created_by)
       VALUES ($1, $1, $2, '2.0.0', '{}', '{}', 'completed', 'none', 1, '{}', '{}', 'test')`,
      [id, component],
    );
  }
  async function event(rolloutId: string, node: string, kind: string, at: string, direction = 'forward') {
    await t.db.query(`INSERT INTO events (kind, actor, rollout_id, node_id, at, data) VALUES ($1, 'test', $2, $3, $4, $5)`, [
      kind,
      rolloutId,
      node,
      at,
      JSON.stringify({ direction }),
    ]);
  }

  it('is undefined without history, then the average forward node duration of that component', async () => {
    expect(await averageNodeSeconds(t.db, 'tool')).toBeUndefined();
    await rollout('r1', 'tool');
    await event('r1', 'n1', 'rollout.node_started', '2026-01-01T00:00:00Z');
    await event('r1', 'n1', 'rollout.node_completed', '2026-01-01T00:00:10Z');
    await event('r1', 'n2', 'rollout.node_started', '2026-01-01T00:00:10Z');
    await event('r1', 'n2', 'rollout.node_completed', '2026-01-01T00:00:40Z');
    // A rollback of n1 and another component's rollout do not count.
    await event('r1', 'n1', 'rollout.node_started', '2026-01-01T00:01:00Z', 'rollback');
    await event('r1', 'n1', 'rollout.node_completed', '2026-01-01T00:09:00Z', 'rollback');
    await rollout('r2', 'other');
    await event('r2', 'n3', 'rollout.node_started', '2026-01-01T00:00:00Z');
    await event('r2', 'n3', 'rollout.node_completed', '2026-01-01T01:00:00Z');
    expect(await averageNodeSeconds(t.db, 'tool')).toBe(20);
    expect(await averageNodeSeconds(t.db, 'other')).toBe(3600);
  });
});
