// Issue 9 goal 6 against a real operator (both engines): a rollout step that waits for no report
// is taken in the same transaction as the step before it, not by a pass queued behind whatever
// else the change woke. Cordon → drain start, and install done → verifying → healthy since: one
// transaction each (their rows and events carry the same database time).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventRow } from '../../src/store/events.js';
import { TEST_ENGINE, type TestDb } from '../support/db.js';
import { type InstallingFleet, startInstallingFleet, stopInstallingFleet } from '../support/installing-fleet.js';
import type { InstallingNode } from '../support/installing-node.js';
import { type ApiClient, waitFor } from '../support/operator.js';

interface TaskRow {
  state: string;
  state_since: Date;
  healthy_since: Date | null;
}

describe(`rollout steps that wait for no report on ${TEST_ENGINE}`, () => {
  let fleet: InstallingFleet | undefined;
  let t: TestDb;
  let api: ApiClient;
  let nodes: InstallingNode[];

  beforeAll(async () => {
    fleet = await startInstallingFleet({ versions: ['1.0.0', '2.0.0'], hostnames: ['st-1', 'st-2'], components: { web: '1.0.0' } });
    ({ t, api, nodes } = fleet);
  });

  afterAll(async () => {
    await stopInstallingFleet(fleet);
  });

  it('cordons and starts the drain in one transaction, and starts the health clock with the move to verifying', async () => {
    const created = await api.post<{ id: string }>('/api/v1/rollouts', {
      name: 'steps',
      target: { component: 'web', version: '2.0.0' },
      selector: { hostnames: ['st-1', 'st-2'] },
      strategy: { batch: { size: 2 }, drain: { mode: 'migrate' }, health: { minHealthyTime: '3s', timeout: '1m' } },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;

    // While minHealthyTime runs, each task is verifying, healthy since the moment it got there.
    const verifying = await waitFor(
      'both tasks verifying and healthy',
      async () => {
        const rows = await t.db.query<TaskRow>('SELECT state, state_since, healthy_since FROM rollout_tasks WHERE rollout_id = $1', [id]);
        return rows.length === 2 && rows.every((r) => r.state === 'verifying' && r.healthy_since !== null) && rows;
      },
      { timeoutMs: 30_000 },
    );
    for (const row of verifying) expect(new Date(row.healthy_since as Date).getTime()).toBe(new Date(row.state_since).getTime());

    await waitFor('the rollout to complete', async () => (await api.ok<{ status: string }>(`/api/v1/rollouts/${id}`)).status === 'completed', { timeoutMs: 30_000 });
    const events = await api.ok<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}`);
    for (const node of nodes) {
      const cordoned = events.find((e) => e.kind === 'node.cordoned' && e.node_id === node.id);
      const drain = events.find((e) => e.kind === 'node.drain_started' && e.node_id === node.id);
      expect(cordoned, node.fake.hostname).toBeDefined();
      expect(drain, node.fake.hostname).toBeDefined();
      expect(drain?.at, node.fake.hostname).toEqual(cordoned?.at);
    }
  });
});
