// The compatibility matrix is checked again before each batch (issue 11, item 7), against a real
// operator on both engines: a rule set after the plan that the next batch would break pauses the
// rollout before that batch, with an event naming the rule; resumed once the rule is lifted, it
// completes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ENGINE, type TestDb } from '../support/db.js';
import { type InstallingFleet, startInstallingFleet, stopInstallingFleet } from '../support/installing-fleet.js';
import type { InstallingNode } from '../support/installing-node.js';
import { type ApiClient, waitFor } from '../support/operator.js';

interface RolloutDetail {
  id: string;
  status: string;
  current_batch: number;
  tasks: { hostname: string; state: string }[];
}

describe(`compatibility re-checked before each batch on ${TEST_ENGINE}`, () => {
  let fleet: InstallingFleet | undefined;
  let t: TestDb;
  let api: ApiClient;
  let nodes: InstallingNode[];

  beforeAll(async () => {
    fleet = await startInstallingFleet({ versions: ['1.0.0', '2.0.0'], hostnames: ['cc-1', 'cc-2'], components: { web: '1.0.0', sidecar: '1.0.0' } });
    ({ t, api, nodes } = fleet);
  });

  afterAll(async () => {
    await stopInstallingFleet(fleet);
  });

  it('pauses before the batch a new rule forbids, and goes on once it is lifted', async () => {
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'web-2',
      target: { component: 'web', version: '2.0.0' },
      strategy: { batch: { size: 1 }, pauseBetweenBatches: '2s', drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' } },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    await waitFor('the first batch done', async () => (await api.ok<RolloutDetail>(`/api/v1/rollouts/${id}`)).tasks.some((task) => task.state === 'done'), { timeoutMs: 30_000 });
    // While the rollout pauses between batches, someone declares web 2 needs a sidecar nobody runs.
    const rule = { component: 'web', range: '>=2.0.0', requires_component: 'sidecar', requires_range: '>=5.0.0' };
    expect((await api.request('PUT', '/api/v1/compat', { rules: [rule] })).status).toBe(200);
    const paused = await waitFor('the rollout to pause', async () => {
      const r = await api.ok<RolloutDetail>(`/api/v1/rollouts/${id}`);
      return r.status === 'paused' ? r : undefined;
    }, { timeoutMs: 30_000 });
    expect(paused.tasks.map((task) => task.state).sort()).toEqual(['done', 'pending']);
    const events = await t.db.query<{ data: { batch: number; violations: string[] } }>(`SELECT data FROM events WHERE rollout_id = $1 AND kind = 'rollout.compat_blocked'`, [id]);
    expect(events).toHaveLength(1);
    expect(events[0]?.data).toEqual({ batch: 1, violations: ['web >=2.0.0 requires sidecar >=5.0.0 (running: sidecar 1.0.0)'] });

    expect((await api.request('PUT', '/api/v1/compat', { rules: [] })).status).toBe(200);
    expect((await api.post(`/api/v1/rollouts/${id}/resume`)).status).toBe(200);
    await waitFor('the rollout to complete', async () => (await api.ok<RolloutDetail>(`/api/v1/rollouts/${id}`)).status === 'completed', { timeoutMs: 30_000 });
    expect(nodes.map((n) => n.components.web)).toEqual(['2.0.0', '2.0.0']);
  });
});
