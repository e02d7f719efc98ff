// Item 8 of issue 8 against a real operator (both engines): a version some rollout's rollback
// needs cannot be archived; a rollback whose version is gone is refused at once and changes
// nothing; and a rollout never removes a component from a node's desired state.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RolloutDecision } from '../../src/domain/rollout/model.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { EventRow } from '../../src/store/events.js';
import { applyRolloutDecision } from '../../src/store/rollout-apply.js';
import { loadRollout } from '../../src/store/rollouts.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { InstallingNode } from '../support/installing-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

interface RolloutDetail {
  id: string;
  name: string;
  status: string;
  tasks: { hostname: string; state: string; direction: string; last_error: string | null }[];
}

const spec = (name: string, version: string, hostnames: string[]) => ({
  name,
  target: { component: 'web', version },
  selector: { hostnames },
  strategy: { batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' } },
});

describe(`rollback versions on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const keys = generateSigningKeyPair();
  const nodes = new Map<string, InstallingNode>();
  const artifactIds = new Map<string, string>();
  const ids = { first: '', second: '' };

  async function publish(version: string): Promise<void> {
    const bytes = randomBytes(32);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature: signArtifact(keys.privatePem, { component: 'web', version, kind: 'binary', sha256 }), public_key: keys.publicPem });
    const response = await fetch(`${op.url}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    expect((await api.post(`/api/v1/artifacts/${id}/bless`)).status).toBe(200);
    artifactIds.set(version, id);
  }
  const rollout = (id: string) => api.ok<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const waitStatus = (id: string, status: string) => waitFor(`rollout ${id} ${status}`, async () => (await rollout(id)).status === status, { timeoutMs: 30_000 });
  const run = async (body: ReturnType<typeof spec>, query = '') => {
    const created = await api.post<RolloutDetail>(`/api/v1/rollouts${query}`, body);
    expect(created.status).toBe(201);
    return created.body.id;
  };
  /** Everything a refused request must leave as it was. */
  const world = async () => ({
    rollouts: await t.db.query('SELECT id, status, updated_at, finished_at FROM rollouts ORDER BY id'),
    tasks: await t.db.query('SELECT id, state, direction, state_since, last_error FROM rollout_tasks ORDER BY id'),
    artifacts: await t.db.query('SELECT id, lifecycle, updated_at FROM artifacts ORDER BY id'),
    desired: await t.db.query('SELECT node_id, component, version, rollback, previous_version, updated_at FROM node_components ORDER BY node_id'),
    events: (await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM events'))[0]?.n,
  });

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    for (const version of ['1.0.0', '2.0.0', '2.1.0', '2.2.0']) await publish(version);
    for (const [hostname, version] of [['rb-1', '1.0.0'], ['rb-2', '1.0.0'], ['rb-3', '0.9.0']] as const) {
      const n = await InstallingNode.register(api, hostname, { web: version });
      n.start();
      nodes.set(hostname, n);
    }
    // Two completed rollouts: 1.0.0 → 2.0.0, then 2.0.0 → 2.1.0. The first can still be rolled
    // back (to 1.0.0) though no node's desired state remembers 1.0.0 any more.
    ids.first = await run(spec('rb-first', '2.0.0', ['rb-1', 'rb-2']));
    await waitStatus(ids.first, 'completed');
    ids.second = await run(spec('rb-second', '2.1.0', ['rb-1', 'rb-2']));
    await waitStatus(ids.second, 'completed');
  });

  afterAll(async () => {
    for (const n of nodes.values()) await n.stop();
    await op?.close();
    await t?.cleanup();
  });

  it('archive refuses a version a completed rollout would roll back to, listing the rollouts and nodes, and changes nothing', async () => {
    const desired = await t.db.query<{ previous_version: string }>(`SELECT previous_version FROM node_components WHERE component = 'web'`);
    expect(desired.map((d) => d.previous_version)).toEqual(['2.0.0', '2.0.0']);
    const before = await world();
    const refused = expectApiError(await api.post(`/api/v1/artifacts/${artifactIds.get('1.0.0')}/archive`), 409, 'ARTIFACT_IN_USE');
    expect(refused.details.rollouts).toEqual([{ rollout_id: ids.first, name: 'rb-first', status: 'completed', nodes: ['rb-1', 'rb-2'] }]);
    expect(refused.details.nodes).toEqual([]);
    expect(refused.message).toContain('rb-first completed: rb-1, rb-2');
    // 2.0.0 is what the second rollout returns to (and what the nodes would roll back to).
    const second = expectApiError(await api.post(`/api/v1/artifacts/${artifactIds.get('2.0.0')}/archive`), 409, 'ARTIFACT_IN_USE');
    expect((second.details.rollouts as { rollout_id: string }[]).map((r) => r.rollout_id)).toEqual([ids.second]);
    expect(await world()).toEqual(before);
    expect((await api.ok<{ lifecycle: string }>(`/api/v1/artifacts/${artifactIds.get('1.0.0')}`)).lifecycle).toBe('blessed');
  });

  it('rollback refuses at once with ROLLBACK_VERSION_UNAVAILABLE when a version it returns to is archived, and changes nothing', async () => {
    // A database an operator without the archive check left behind: 1.0.0 archived anyway.
    await t.db.query(`UPDATE artifacts SET lifecycle = 'archived' WHERE id = $1`, [artifactIds.get('1.0.0')]);
    const before = await world();
    const refused = expectApiError(await api.post(`/api/v1/rollouts/${ids.first}/rollback`), 409, 'ROLLBACK_VERSION_UNAVAILABLE');
    expect(refused.details).toEqual({ id: ids.first, versions: [{ version: '1.0.0', nodes: ['rb-1', 'rb-2'], status: 'archived' }] });
    expect(refused.message).toContain('1.0.0 is archived (needed by rb-1, rb-2)');
    // Give the reconciler time to act, if it (wrongly) had anything to act on.
    await new Promise((r) => setTimeout(r, 500));
    expect(await world()).toEqual(before);
    expect((await rollout(ids.first)).status).toBe('completed');
    for (const host of ['rb-1', 'rb-2']) {
      expect(nodes.get(host)?.components.web).toBe('2.1.0');
      expect(nodes.get(host)?.desired.web?.version).toBe('2.1.0');
    }
    // The rollback the second rollout offers (to 2.0.0, available) is still accepted.
    expect((await api.post(`/api/v1/rollouts/${ids.second}/rollback`)).status).toBe(200);
    await waitStatus(ids.second, 'rolled_back');
    expect([...['rb-1', 'rb-2']].map((h) => nodes.get(h)?.components.web)).toEqual(['2.0.0', '2.0.0']);
  });

  it('a failed node whose previous version was never published keeps its component in the desired state, and says why', async () => {
    const node = nodes.get('rb-3') as InstallingNode;
    node.broken.add('2.2.0');
    // 0.9.0 was never published: preflight says so, and a person overrides it knowingly.
    const id = await run(spec('rb-unpublished', '2.2.0', ['rb-3']), '?override=rollback-version');
    await waitStatus(id, 'failed');
    expect((await rollout(id)).tasks.map((task) => [task.hostname, task.state])).toEqual([['rb-3', 'failed']]);
    const unavailable = (await api.ok<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}`)).filter((e) => e.kind === 'rollout.version_unavailable');
    expect(unavailable.map((e) => [e.node_id, e.data.version])).toEqual([[node.id, '0.9.0']]);
    // The component is still desired (at what the rollout last set), never silently dropped.
    const components = await api.ok<Record<string, { version: string }>>(`/api/v1/nodes/${node.id}/components`);
    expect(components.web?.version).toBe('2.2.0');
    await node.tick();
    expect(node.desired.web?.version).toBe('2.2.0');
    expect(node.components.web).toBe('0.9.0');
  });

  it('decide rollback after a breaker trip is refused the same way when a completed node’s version is gone; another decision still works', async () => {
    for (const host of ['rb-2', 'rb-3']) nodes.get(host)?.broken.add('2.2.0');
    const body = { ...spec('rb-tripped', '2.2.0', ['rb-1', 'rb-2', 'rb-3']), strategy: { ...spec('x', '2.2.0', []).strategy, order: 'rolling' } };
    const id = await run(body, '?override=rollback-version');
    await waitStatus(id, 'awaiting_decision');
    expect((await rollout(id)).tasks.map((task) => [task.hostname, task.state])).toEqual([
      ['rb-1', 'done'],
      ['rb-2', 'failed'],
      ['rb-3', 'failed'],
    ]);
    await t.db.query(`UPDATE artifacts SET lifecycle = 'archived' WHERE id = $1`, [artifactIds.get('2.0.0')]);
    const before = await world();
    const refused = expectApiError(await api.post(`/api/v1/rollouts/${id}/decide`, { decision: 'rollback' }), 409, 'ROLLBACK_VERSION_UNAVAILABLE');
    expect(refused.details).toEqual({ id, versions: [{ version: '2.0.0', nodes: ['rb-1'], status: 'archived' }] });
    expect(await world()).toEqual(before);
    const pending = await api.ok<{ kind: string; status: string }[]>(`/api/v1/approvals?rollout_id=${id}`);
    expect(pending).toEqual([expect.objectContaining({ kind: 'continuation', status: 'pending' })]);
    expect((await api.post(`/api/v1/rollouts/${id}/decide`, { decision: 'abort' })).status).toBe(200);
    await waitStatus(id, 'aborted');
  });

  it('applying a set_version to an archived version leaves the desired component as it is and records why', async () => {
    const loaded = await loadRollout(t.db, ids.first);
    if (!loaded) throw new Error('first rollout missing');
    const rb1 = nodes.get('rb-1') as InstallingNode;
    const before = await t.db.query('SELECT * FROM node_components WHERE node_id = $1', [rb1.id]);
    expect(before).toHaveLength(1);
    const decision: RolloutDecision = {
      rollout: {},
      tasks: [],
      commands: [{ kind: 'set_version', nodeId: rb1.id, component: 'web', version: '1.0.0', rollback: true }],
      events: [],
      requeueAfterMs: null,
    };
    await t.db.transaction((tx) => applyRolloutDecision(tx, loaded.rollout, loaded.tasks, decision));
    expect(await t.db.query('SELECT * FROM node_components WHERE node_id = $1', [rb1.id])).toEqual(before);
    const [event] = await t.db.query<{ data: Record<string, unknown> }>(
      `SELECT data FROM events WHERE kind = 'rollout.version_unavailable' AND node_id = $1 ORDER BY id DESC LIMIT 1`,
      [rb1.id],
    );
    expect(event?.data).toMatchObject({ component: 'web', version: '1.0.0' });
    expect(event?.data.reason).toContain('web 1.0.0 is archived');
  });
});
