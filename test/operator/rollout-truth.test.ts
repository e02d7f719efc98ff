// DESIGN.md §8.8 against a real operator (both engines): a rollout whose nodes failed never
// reports success, and a downgrade is either refused by preflight or installed explicitly.
// The nodes speak the real agent protocol over HTTP and decide installs by the agent's rule.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { EventRow } from '../../src/store/events.js';
import { SignedPublisher } from '../support/signed-artifacts.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { InstallingNode } from '../support/installing-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';
import { BUNDLE } from '../support/processes.js';

const execFileAsync = promisify(execFile);

interface Check {
  id: string;
  status: string;
  message: string;
  objects: string[];
  overridden?: boolean;
}
interface RolloutDetail {
  id: string;
  status: string;
  tasks: { hostname: string; state: string; direction: string; from_version: string | null; last_error: string | null }[];
  preflight: { checks: Check[] };
}

const spec = (name: string, version: string, hostnames: string[], over: Record<string, unknown> = {}) => ({
  name,
  target: { component: 'web', version },
  selector: { hostnames },
  strategy: { batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' }, circuitBreaker: { maxConsecutiveFailures: 5 } },
  ...over,
});

describe(`rollout outcomes tell the truth on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const nodes: InstallingNode[] = [];

  const publisher = new SignedPublisher(() => op.url, () => api);
  const publish = (version: string) => publisher.publish(version);
  const rollout = (id: string) => api.ok<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const events = (id: string) => api.ok<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}`);
  const waitEnd = (id: string) =>
    waitFor(`rollout ${id} to end`, async () => {
      const r = await rollout(id);
      return ['completed', 'failed', 'aborted', 'rolled_back'].includes(r.status) && r;
    }, { timeoutMs: 30_000 });
  const count = async (table: string) => (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0]?.n;
  const world = async () => ({
    rollouts: await count('rollouts'),
    tasks: await count('rollout_tasks'),
    events: await count('events'),
    desired: await t.db.query('SELECT node_id, component, version, rollback, previous_version FROM node_components ORDER BY node_id, component'),
  });
  const node = (hostname: string) => nodes.find((n) => n.fake.hostname === hostname) as InstallingNode;
  /** `drydock rollout watch ID` from the built bundle, against this operator: its exit code and output. */
  async function watch(id: string): Promise<{ code: number; stdout: string }> {
    try {
      const { stdout } = await execFileAsync(process.execPath, [BUNDLE, 'rollout', 'watch', id], { env: { ...process.env, DRYDOCK_URL: op.url }, timeout: 30_000 });
      return { code: 0, stdout };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string };
      return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
    }
  }

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    for (const version of ['1.0.0', '2.0.0', '3.0.0']) await publish(version);
    for (const [hostname, version] of [['tr-1', '1.0.0'], ['tr-2', '1.0.0'], ['dg-1', '3.0.0'], ['dg-2', '3.0.0']] as const) {
      const n = await InstallingNode.register(api, hostname, { web: version });
      n.start();
      nodes.push(n);
    }
  });

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await op?.close();
    await t?.cleanup();
  });

  it('a node whose install fails makes the rollout end failed, naming it — never completed — even when the breaker does not trip', async () => {
    node('tr-2').broken.add('2.0.0');
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', spec('truth-broken', '2.0.0', ['tr-1', 'tr-2']));
    expect(created.status).toBe(201);
    const end = await waitEnd(created.body.id);
    expect(end.status).toBe('failed');
    expect(end.tasks.map((task) => [task.hostname, task.state])).toEqual([
      ['tr-1', 'done'],
      ['tr-2', 'failed'],
    ]);
    expect(end.tasks[1]?.last_error).toContain('install reverted');
    const kinds = (await events(created.body.id)).map((e) => e.kind);
    expect(kinds).not.toContain('rollout.completed');
    expect(kinds).not.toContain('rollout.circuit_breaker_tripped');
    const failed = (await events(created.body.id)).filter((e) => e.kind === 'rollout.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.data).toMatchObject({ failed_nodes: ['tr-2'], done: 1, failed: 1 });
    expect(failed[0]?.data.reason).toMatch(/tr-2 \(failed: install reverted/);
    expect(kinds.at(-1)).toBe('rollout.failed');
    // The list of completed rollouts does not show it, and drift does not take it as the fleet's truth.
    expect((await api.ok<{ id: string }[]>('/api/v1/rollouts?status=completed')).map((r) => r.id)).not.toContain(created.body.id);
    // The CLI says so and exits non-zero.
    const watched = await watch(created.body.id);
    expect(watched.code).toBe(1);
    expect(watched.stdout).toMatch(/rollout failed\n$/);
    // tr-2 is back on 1.0.0 by itself and enabled.
    await waitFor('tr-2 on 1.0.0', async () => node('tr-2').components.web === '1.0.0');
  });

  it('a downgrade without allowDowngrade is refused by preflight with 409 and the `downgrade` check, and nothing is created', async () => {
    const before = await world();
    const body = spec('truth-downgrade', '2.0.0', ['dg-1', 'dg-2']);
    const planned = await api.post<{ preflight: { checks: Check[]; blocked: boolean } }>('/api/v1/rollouts/plan', body);
    expect(planned.body.preflight.blocked).toBe(true);
    const refused = expectApiError(await api.post('/api/v1/rollouts', body), 409, 'PREFLIGHT_FAILED');
    expect(refused.details.failed).toEqual(['downgrade']);
    const check = (refused.details.checks as Check[]).find((c) => c.id === 'downgrade');
    expect(check).toMatchObject({ status: 'fail', objects: ['dg-1 3.0.0 → 2.0.0', 'dg-2 3.0.0 → 2.0.0'] });
    expect(check?.message).toContain('allowDowngrade: true');
    expect(refused.message).toContain('downgrade');
    expect(await world()).toEqual(before);
  });

  it('an overridden downgrade check does not make refusals a success: every node refuses, the rollout ends failed', async () => {
    const created = await api.post<RolloutDetail>('/api/v1/rollouts?override=downgrade', spec('truth-refused', '2.0.0', ['dg-1', 'dg-2']));
    expect(created.status).toBe(201);
    const end = await waitEnd(created.body.id);
    expect(end.status).toBe('failed');
    expect(end.tasks.map((task) => task.state)).toEqual(['failed', 'failed']);
    for (const task of end.tasks) expect(task.last_error).toContain('downgrade from 3.0.0 to 2.0.0 refused');
    expect((await events(created.body.id)).map((e) => e.kind)).not.toContain('rollout.completed');
    expect(node('dg-1').components.web).toBe('3.0.0');
    expect((await watch(created.body.id)).code).toBe(1);
  });

  it('with allowDowngrade the desired state marks the install explicit, the nodes install it, and the rollback returns them to the higher version', async () => {
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', spec('truth-allowed', '2.0.0', ['dg-1', 'dg-2'], { allowDowngrade: true }));
    expect(created.status).toBe(201);
    expect(created.body.preflight.checks.find((c) => c.id === 'downgrade')).toMatchObject({ status: 'warn', objects: ['dg-1 3.0.0 → 2.0.0', 'dg-2 3.0.0 → 2.0.0'] });
    // What the agent is sent: version 2.0.0 with the flag that lets it install a lower version.
    const desired = await waitFor('dg-1 told to install 2.0.0', async () => node('dg-1').desired.web?.version === '2.0.0' && node('dg-1').desired.web);
    expect(desired.rollback).toBe(true);
    const end = await waitEnd(created.body.id);
    expect(end.status).toBe('completed');
    expect(end.tasks.map((task) => [task.hostname, task.state, task.from_version])).toEqual([
      ['dg-1', 'done', '3.0.0'],
      ['dg-2', 'done', '3.0.0'],
    ]);
    expect(nodes.filter((n) => n.fake.hostname.startsWith('dg-')).map((n) => n.components.web)).toEqual(['2.0.0', '2.0.0']);
    expect(await watch(created.body.id)).toMatchObject({ code: 0, stdout: expect.stringMatching(/rollout completed\n$/) });
    const started = (await events(created.body.id)).filter((e) => e.kind === 'rollout.node_started');
    expect(started.map((e) => e.data)).toEqual([
      expect.objectContaining({ hostname: 'dg-1', direction: 'forward', version: '2.0.0', downgrade: true, from_version: '3.0.0' }),
      expect.objectContaining({ hostname: 'dg-2', direction: 'forward', version: '2.0.0', downgrade: true, from_version: '3.0.0' }),
    ]);
    const set = (await events(created.body.id)).filter((e) => e.kind === 'node.component_version_set');
    expect(set.map((e) => e.data)).toEqual([
      expect.objectContaining({ hostname: 'dg-1', version: '2.0.0', rollback: true, previous_version: '3.0.0' }),
      expect.objectContaining({ hostname: 'dg-2', version: '2.0.0', rollback: true, previous_version: '3.0.0' }),
    ]);

    expect((await api.post(`/api/v1/rollouts/${created.body.id}/rollback`)).status).toBe(200);
    const back = await waitEnd(created.body.id);
    expect(back.status).toBe('rolled_back');
    expect(back.tasks.map((task) => [task.hostname, task.state, task.direction])).toEqual([
      ['dg-1', 'rolled_back', 'rollback'],
      ['dg-2', 'rolled_back', 'rollback'],
    ]);
    expect(nodes.filter((n) => n.fake.hostname.startsWith('dg-')).map((n) => n.components.web)).toEqual(['3.0.0', '3.0.0']);
    expect(node('dg-1').desired.web).toMatchObject({ version: '3.0.0', rollback: true });
  });
});
