// "Roll back one region" (issue 11, item 8) against a real operator on both engines: a rollback
// limited to a region returns only that region's completed nodes, through the same task rules;
// a region the rollout has no node in is refused and changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { SignedPublisher } from '../support/signed-artifacts.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { InstallingNode } from '../support/installing-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

interface RolloutDetail {
  id: string;
  status: string;
  tasks: { hostname: string; state: string; direction: string }[];
}

describe(`regional rollback on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const nodes = new Map<string, InstallingNode>();
  let id = '';

  const publisher = new SignedPublisher(() => op.url, () => api);
  const publish = (version: string) => publisher.publish(version);
  const detail = (rolloutId: string) => api.ok<RolloutDetail>(`/api/v1/rollouts/${rolloutId}`);

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    for (const version of ['1.0.0', '2.0.0']) await publish(version);
    for (const [hostname, region] of [['eu-1', 'eu-west'], ['eu-2', 'eu-west'], ['us-1', 'us-east'], ['us-2', 'us-east']] as const) {
      const n = await InstallingNode.register(api, hostname, { web: '1.0.0' }, region);
      n.start();
      nodes.set(hostname, n);
    }
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'web-2',
      target: { component: 'web', version: '2.0.0' },
      strategy: { batch: { size: 2 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' } },
    });
    expect(created.status).toBe(201);
    id = created.body.id;
    await waitFor('the rollout to complete', async () => (await detail(id)).status === 'completed', { timeoutMs: 30_000 });
  });

  afterAll(async () => {
    for (const n of nodes.values()) await n.stop();
    await op?.close();
    await t?.cleanup();
  });

  it('refuses a region the rollout has no node in, and changes nothing', async () => {
    const before = await t.db.query('SELECT id, status, updated_at, rollback_regions FROM rollouts');
    const refused = expectApiError(await api.post(`/api/v1/rollouts/${id}/rollback`, { region: 'mars-1' }), 400, 'ROLLBACK_REGION_UNKNOWN');
    expect(refused.details).toMatchObject({ regions: ['mars-1'], known: ['eu-west', 'us-east'] });
    expectApiError(await api.post(`/api/v1/rollouts/${id}/rollback`, { region: 'eu-west', extra: true }), 400, 'VALIDATION_FAILED');
    expect(await t.db.query('SELECT id, status, updated_at, rollback_regions FROM rollouts')).toEqual(before);
  });

  it('returns only the named region’s nodes, and says which region in its events', async () => {
    expect((await api.post(`/api/v1/rollouts/${id}/rollback`, { region: 'eu-west' })).status).toBe(200);
    await waitFor('the regional rollback to end', async () => (await detail(id)).status === 'rolled_back', { timeoutMs: 30_000 });
    const versions = Object.fromEntries([...nodes].map(([host, n]) => [host, n.components.web]));
    expect(versions).toEqual({ 'eu-1': '1.0.0', 'eu-2': '1.0.0', 'us-1': '2.0.0', 'us-2': '2.0.0' });
    const tasks = (await detail(id)).tasks.map((task) => [task.hostname, task.state, task.direction]).sort();
    expect(tasks).toEqual([
      ['eu-1', 'rolled_back', 'rollback'],
      ['eu-2', 'rolled_back', 'rollback'],
      ['us-1', 'done', 'forward'],
      ['us-2', 'done', 'forward'],
    ]);
    const events = await t.db.query<{ kind: string; data: { regions?: string[] } }>(`SELECT kind, data FROM events WHERE rollout_id = $1 AND kind IN ('rollout.rolling_back', 'rollout.rolled_back') ORDER BY id`, [id]);
    expect(events.map((e) => [e.kind, e.data.regions])).toEqual([
      ['rollout.rolling_back', ['eu-west']],
      ['rollout.rolled_back', ['eu-west']],
    ]);
  });
});
