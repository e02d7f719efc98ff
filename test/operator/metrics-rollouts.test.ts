// Rollout metrics against a real operator: a rollout whose node fails trips its breaker, and
// the counters read from the event log agree with the log; a task left in flight past its
// deadline while nobody leads shows as a stuck rollout, and leadership drops to 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { EventRow } from '../../src/store/events.js';
import { TEST_ENGINE, type TestDb } from '../support/db.js';
import { type InstallingFleet, startInstallingFleet, stopInstallingFleet } from '../support/installing-fleet.js';
import { type ApiClient, waitFor } from '../support/operator.js';

function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe(`rollout metrics on ${TEST_ENGINE}`, () => {
  let fleet: InstallingFleet | undefined;
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const scrape = async () => (await api.get<string>('/metrics')).text;

  beforeAll(async () => {
    fleet = await startInstallingFleet({ versions: ['1.0.0', '2.0.0'], hostnames: ['mr-1', 'mr-2', 'mr-3'], components: { web: '1.0.0' }, broken: ['2.0.0'] });
    ({ t, op, api } = fleet);
  });
  afterAll(async () => {
    await stopInstallingFleet(fleet);
  });

  it('a failing rollout: breaker trips, a decision is pending, and the counters agree with the event log', async () => {
    const created = await api.post<{ id: string }>('/api/v1/rollouts', {
      name: 'metered-rollout',
      target: { component: 'web', version: '2.0.0' },
      selector: { hostnames: ['mr-1', 'mr-2', 'mr-3'] },
      strategy: { batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' }, circuitBreaker: { maxConsecutiveFailures: 1 } },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const text = await waitFor('the breaker decision to be pending in /metrics', async () => {
      const body = await scrape();
      return sample(body, 'drydock_approvals_pending{kind="continuation"}') === 1 ? body : undefined;
    }, { timeoutMs: 30_000 });
    const { status } = await api.ok<{ status: string }>(`/api/v1/rollouts/${id}`);
    expect(sample(text, `drydock_rollouts{status="${status}"}`)).toBe(1);
    const log = await api.ok<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}`);
    const count = (kind: string, direction?: string) => log.filter((e) => e.kind === kind && (direction === undefined || e.data.direction === direction)).length;
    expect(count('rollout.circuit_breaker_tripped')).toBe(1);
    expect(sample(text, 'drydock_breaker_trips_total{component="web"}')).toBe(1);
    expect(sample(text, 'drydock_node_upgrades_total{component="web",outcome="failed"}')).toBe(count('rollout.node_failed'));
    expect(sample(text, 'drydock_node_upgrades_total{component="web",outcome="failed"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'drydock_node_upgrades_total{component="web",outcome="upgraded"}')).toBe(count('rollout.node_completed', 'forward'));
    expect(sample(text, 'drydock_node_upgrades_total{component="web",outcome="rolled_back"}')).toBe(count('rollout.node_completed', 'rollback'));
    const all = await api.ok<EventRow[]>('/api/v1/events?after=0&kind_prefix=node.reverted');
    expect(sample(text, 'drydock_installs_total{component="web",phase="reverted"}')).toBe(all.length);
  });

  it('a task in flight past its deadline while no replica leads is a stuck rollout', async () => {
    await op.ctx.lease.stop();
    const [task] = await t.db.query<{ id: string }>(`SELECT id FROM rollout_tasks WHERE state = 'pending' ORDER BY id LIMIT 1`);
    expect(task).toBeDefined();
    // The spec's health.timeout is 1 min: two minutes in `installing` is past it.
    await t.db.query(`UPDATE rollout_tasks SET state = 'installing', state_since = now() - interval '2 minutes' WHERE id = $1`, [task?.id]);
    const text = await scrape();
    expect(sample(text, 'drydock_rollout_tasks_past_deadline')).toBe(1);
    expect(sample(text, 'drydock_rollout_tasks{phase="installing"}')).toBe(1);
    expect(sample(text, 'drydock_leader')).toBe(0);
    await t.db.query(`UPDATE rollout_tasks SET state_since = now() WHERE id = $1`, [task?.id]);
    expect(sample(await scrape(), 'drydock_rollout_tasks_past_deadline')).toBe(0);
  });
});
