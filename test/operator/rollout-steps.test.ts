// Issue 9 goal 6 against a real operator (both engines): a rollout step that waits for no report
// is taken in the same transaction as the step before it, not by a pass queued behind whatever
// else the change woke. Cordon → drain start, and install done → verifying → healthy since: one
// transaction each (their rows and events carry the same database time).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { EventRow } from '../../src/store/events.js';
import { SignedPublisher } from '../support/signed-artifacts.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { InstallingNode } from '../support/installing-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

interface TaskRow {
  state: string;
  state_since: Date;
  healthy_since: Date | null;
}

describe(`rollout steps that wait for no report on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const nodes: InstallingNode[] = [];
  const publisher = new SignedPublisher(() => op.url, () => api);

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    for (const version of ['1.0.0', '2.0.0']) await publisher.publish(version);
    for (const hostname of ['st-1', 'st-2']) {
      const n = await InstallingNode.register(api, hostname, { web: '1.0.0' });
      n.start();
      nodes.push(n);
    }
  });

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await op?.close();
    await t?.cleanup();
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
