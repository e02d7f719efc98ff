// The control plane upgrades itself (issue 11, DESIGN.md §11), end to end on the PostgreSQL
// server: 3 regions × 3 control-plane agents, each supervising a real operator replica; API
// traffic and the agents go through `drydock edge`. A rollout of operator 1.0.0 → 2.0.0 (which
// brings an expand and a contract migration) completes with no failed API request, never fewer
// than 2 ready replicas per region, the contract only after the last replica, a new leader on
// the way, and each node upgraded once. Then a broken build (its operator exits at start) goes
// back to 2.0.0 by itself and trips the breaker. Then blue-green: 2.1.0 starts beside 2.0.0 on
// every node, the edge moves to it once all are ready, the old replicas stop; and 2.2.0 the same
// way, rolled back after the switch: the edge moves back to the 2.1.0 replicas, which never stopped.
// Last, 2.3.0 region by region with a person's approval at each new region.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlaneFleet } from '../../src/demo/control-plane-fleet.js';
import { apiTraffic, type ServingSample, watchReplicas, watchServing } from '../../src/demo/control-plane-watch.js';
import { isAlive, waitFor } from '../../src/demo/local-fleet.js';
import type { ReplicaView } from '../../src/store/operator-replicas.js';
import { BUNDLE } from '../support/processes.js';
import { createServerDb, type ServerDb } from '../support/server-db.js';

const REGIONS = ['eu-west', 'us-east', 'ap-south'];

interface RolloutDetail {
  id: string;
  status: string;
  tasks: { hostname: string; state: string; last_error: string | null }[];
}
interface EventRow {
  id: number;
  at: string;
  kind: string;
  node_id: string | null;
  rollout_id: string | null;
  data: Record<string, unknown>;
}

describe('the control plane upgrades itself', () => {
  let db: ServerDb;
  let dir: string;
  let cp: ControlPlaneFleet;
  const replicaPids = new Set<number>();

  beforeAll(async () => {
    db = await createServerDb('drydock_cp');
    dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-control-plane-'));
    cp = new ControlPlaneFleet({ bin: BUNDLE, dir, databaseUrl: db.url, regions: REGIONS, perRegion: 3, operatorDeadline: '20s' });
    await cp.prepare();
    await cp.start();
    for (const pid of cp.replicaPids()) replicaPids.add(pid);
    await cp.publish('v1');
    await cp.publish('v2');
    await cp.publish('broken');
    await cp.publish('green');
    await cp.publish('green2');
    await cp.publish('v3');
  }, 300_000);

  afterAll(async () => {
    const stopped = await cp?.stop();
    for (const pid of stopped ?? []) replicaPids.add(pid);
    const left = [...replicaPids, ...(cp?.fleet.spawnedPids ?? [])].filter(isAlive);
    // DRYDOCK_KEEP_TEST_DIR=1 keeps the agents' and replicas' logs for a look after a failure.
    if (process.env.DRYDOCK_KEEP_TEST_DIR) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    await db?.drop();
    expect(left).toEqual([]);
  }, 120_000);

  async function events(rolloutId: string): Promise<EventRow[]> {
    return cp.client().get<EventRow[]>(`/api/v1/events?rollout_id=${rolloutId}&limit=1000`);
  }

  it('rolls 1.0.0 → 2.0.0 over 9 replicas with the migrations at both ends and no failed request', async () => {
    const before = await cp.replicas();
    expect(before.filter((r) => r.live && r.ready).map((r) => r.version)).toEqual(Array(9).fill('1.0.0'));
    const firstLeader = before.find((r) => r.live && r.leader)?.hostname;
    expect(firstLeader).toBeDefined();

    const sampler = watchReplicas(cp);
    // Four clients: at least 20 requests/s even on a loaded machine.
    const load = apiTraffic(`${cp.apiUrl}/api/v1/nodes`, 4);
    const t0 = Date.now();
    const created = await cp.client().post<{ id: string }>('/api/v1/rollouts', {
      name: 'control-plane-2-0-0',
      target: { component: 'operator', version: '2.0.0' },
      selector: { role: 'control-plane' },
      strategy: {
        batch: { size: 3 },
        minAvailablePerRegion: 2,
        health: { minHealthyTime: '1s', timeout: '2m' },
        circuitBreaker: { maxConsecutiveFailures: 1 },
      },
    });
    const done = await waitFor(
      'the control-plane rollout to end',
      async () => {
        const r = await cp.client().get<RolloutDetail>(`/api/v1/rollouts/${created.id}`).catch(() => undefined);
        return r && ['completed', 'failed', 'awaiting_decision', 'aborted'].includes(r.status) ? r : undefined;
      },
      300_000,
      500,
    );
    const elapsed = Date.now() - t0;
    await load.stop();
    await sampler.stop();

    expect({ status: done.status, tasks: done.tasks.filter((t) => t.state !== 'done') }).toEqual({ status: 'completed', tasks: [] });
    expect({ failed: load.stats.failed, errors: load.stats.errors.slice(0, 5) }).toEqual({ failed: 0, errors: [] });
    expect(load.stats.sent / (elapsed / 1000)).toBeGreaterThanOrEqual(20);
    for (const region of REGIONS) expect(sampler.minReady.get(region), region).toBeGreaterThanOrEqual(2);
    expect(sampler.leaders.length).toBeGreaterThanOrEqual(2);

    const after = await cp.replicas();
    expect(after.filter((r) => r.live && r.ready).map((r) => r.version)).toEqual(Array(9).fill('2.0.0'));

    // Each node upgraded exactly once; the expand before the first node, the contract after the last.
    const log = await events(created.id);
    const started = log.filter((e) => e.kind === 'rollout.node_started');
    expect(started.map((e) => e.data.hostname).sort()).toEqual(cp.nodes.map((n) => n.hostname).sort());
    const expanded = log.find((e) => e.kind === 'rollout.schema_expanded');
    const contracted = log.find((e) => e.kind === 'rollout.schema_contracted');
    expect(expanded?.data.applied).toEqual(['0900_drill_node_notes']);
    expect(contracted?.data.applied).toEqual(['0901_drill_drop_legacy_note']);
    expect(Math.min(...started.map((e) => e.id))).toBeGreaterThan(expanded!.id);
    const completedNodes = log.filter((e) => e.kind === 'rollout.node_completed');
    expect(completedNodes).toHaveLength(9);
    expect(contracted!.id).toBeGreaterThan(Math.max(...completedNodes.map((e) => e.id)));

    // The schema as the database has it: both drill migrations, the legacy column gone.
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const applied = await client.query<{ version: number; phase: string }>('SELECT version, phase FROM schema_migrations WHERE version >= 900 ORDER BY version');
      expect(applied.rows).toEqual([
        { version: 900, phase: 'pre' },
        { version: 901, phase: 'post' },
      ]);
      const columns = await client.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_name = 'drill_node_notes' ORDER BY column_name`);
      expect(columns.rows.map((c) => c.column_name)).toEqual(['node_id', 'note']);
    } finally {
      await client.end();
    }

    // After the contract, a rollback is refused with the reason, and changes nothing.
    const refused = await fetch(`${cp.apiUrl}/api/v1/rollouts/${created.id}/rollback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('ROLLBACK_AFTER_CONTRACT');
    expect((await cp.client().get<RolloutDetail>(`/api/v1/rollouts/${created.id}`)).status).toBe('completed');
  }, 420_000);

  it('a build that never becomes ready goes back to the previous version by itself and trips the breaker', async () => {
    const created = await cp.client().post<{ id: string }>('/api/v1/rollouts', {
      name: 'control-plane-broken',
      target: { component: 'operator', version: '2.0.1' },
      selector: { role: 'control-plane' },
      strategy: { batch: { size: 1 }, minAvailablePerRegion: 2, health: { minHealthyTime: '1s', timeout: '2m' }, circuitBreaker: { maxConsecutiveFailures: 1 } },
    });
    const stopped = await waitFor(
      'the breaker to trip',
      async () => {
        const r = await cp.client().get<RolloutDetail>(`/api/v1/rollouts/${created.id}`).catch(() => undefined);
        return r && r.status !== 'running' ? r : undefined;
      },
      180_000,
      500,
    );
    expect(stopped.status).toBe('awaiting_decision');
    const failed = stopped.tasks.filter((t) => t.state === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.last_error).toMatch(/2\.0\.1/);
    // Every replica serves 2.0.0 again, the failed node's included, with no operator action.
    await waitFor(
      'nine ready 2.0.0 replicas',
      async () => {
        const replicas = await cp.replicas().catch(() => [] as ReplicaView[]);
        const ready = replicas.filter((r) => r.live && r.ready);
        return ready.length === 9 && ready.every((r) => r.version === '2.0.0') ? true : undefined;
      },
      60_000,
      500,
    );
    const node = cp.nodes.find((n) => n.hostname === failed[0]?.hostname);
    const health = (await (await fetch(`http://${node?.listen}/health`)).json()) as { version: string; ready: boolean };
    expect(health).toMatchObject({ version: '2.0.0', ready: true });
  }, 300_000);
  async function waitForStatus(id: string, statuses: string[], timeoutMs: number): Promise<RolloutDetail> {
    return waitFor(
      `rollout ${id} to reach ${statuses.join(' or ')}`,
      async () => {
        const r = await cp.client().get<RolloutDetail>(`/api/v1/rollouts/${id}`).catch(() => undefined);
        return r && statuses.includes(r.status) ? r : undefined;
      },
      timeoutMs,
      500,
    );
  }

  /** A rollout's events as lines, for a failed expectation's message. */
  async function story(id: string): Promise<string> {
    const log = await events(id).catch(() => [] as EventRow[]);
    return log.map((e) => `${e.at.slice(11, 23)} ${e.kind} ${e.data.hostname ?? ''} ${JSON.stringify(e.data)}`).join('\n');
  }

  /** The versions answering through the edge, in order, with each change of version once. */
  const changes = (samples: readonly ServingSample[]) => samples.map((s) => s.version).filter((v, i, all) => i === 0 || all[i - 1] !== v);
  /** For a failed assertion: each change of the answering version and the rollout's events, in time order. */
  const timeline = (samples: readonly ServingSample[], log: readonly EventRow[]) =>
    [
      ...samples.filter((s, i) => i === 0 || samples[i - 1]?.version !== s.version).map((s) => ({ at: s.at, what: `edge answers ${s.version}` })),
      ...log.map((e) => ({ at: Date.parse(e.at), what: e.kind })),
    ]
      .sort((a, b) => a.at - b.at)
      .map((x) => `${new Date(x.at).toISOString().slice(11, 23)} ${x.what}`)
      .join('\n');

  it('blue-green: 2.1.0 starts beside 2.0.0 on every node, the edge moves to it once all are ready, then the old replicas stop', async () => {
    // The breaker drill above left its rollout waiting for a decision: it ends here.
    const held = (await cp.client().get<{ id: string; status: string }[]>('/api/v1/rollouts')).filter((r) => r.status === 'awaiting_decision');
    for (const r of held) await cp.client().post(`/api/v1/rollouts/${r.id}/abort`);
    for (const r of held) await waitForStatus(r.id, ['aborted'], 60_000);
    const oldPids = cp.replicaPids();
    expect(oldPids).toHaveLength(9);

    const sampler = watchReplicas(cp);
    const load = apiTraffic(`${cp.apiUrl}/api/v1/nodes`);
    const serving = watchServing(`${cp.apiUrl}/health`);
    const created = await cp.client().post<{ id: string }>('/api/v1/rollouts', {
      name: 'control-plane-2-1-0-blue-green',
      target: { component: 'operator', version: '2.1.0' },
      selector: { role: 'control-plane' },
      strategy: { order: 'blue-green', batch: { size: 9 }, blueGreen: { retireAfter: '3s' }, health: { minHealthyTime: '1s', timeout: '2m' } },
    });
    const done = await waitForStatus(created.id, ['completed', 'failed', 'awaiting_decision', 'aborted', 'rolled_back'], 300_000);
    await load.stop();
    await sampler.stop();
    await serving.stop();

    expect({ status: done.status, tasks: done.tasks.filter((t) => t.state !== 'done') }, await story(created.id)).toEqual({ status: 'completed', tasks: [] });
    expect({ failed: load.stats.failed, errors: load.stats.errors.slice(0, 5) }).toEqual({ failed: 0, errors: [] });
    // The old replicas kept serving until the switch: no region ever had fewer than 3 ready.
    for (const region of REGIONS) expect(sampler.minReady.get(region), region).toBeGreaterThanOrEqual(3);

    const log = await events(created.id);
    const kinds = log.map((e) => e.kind);
    const switched = log.find((e) => e.kind === 'rollout.traffic_switched');
    const retired = log.find((e) => e.kind === 'rollout.previous_retired');
    expect(switched?.data).toMatchObject({ from_versions: ['2.0.0'], to_version: '2.1.0' });
    expect(retired?.data.nodes).toHaveLength(9);
    expect(log.filter((e) => e.kind === 'rollout.node_started')).toHaveLength(9);
    const lastCompleted = Math.max(...log.filter((e) => e.kind === 'rollout.node_completed').map((e) => e.id));
    expect(switched!.id).toBeGreaterThan(lastCompleted);
    expect(retired!.id).toBeGreaterThan(switched!.id);
    expect(kinds.at(-1)).toBe('rollout.completed');

    // Through the edge: 2.0.0 until the switch, then 2.1.0, never back and forth.
    expect(changes(serving.samples), timeline(serving.samples, log)).toEqual(['2.0.0', '2.1.0']);
    const firstNew = serving.samples.find((s) => s.version === '2.1.0')!;
    expect(firstNew.at).toBeGreaterThanOrEqual(Date.parse(switched!.at));

    // Nine 2.1.0 replicas on the second addresses; the 2.0.0 processes are gone.
    const after = await cp.replicas();
    const live = after.filter((r) => r.live && r.ready);
    expect(live.map((r) => r.version)).toEqual(Array(9).fill('2.1.0'));
    expect(live.map((r) => r.url).sort()).toEqual(cp.nodes.map((n) => `http://${n.altListen}`).sort());
    await waitFor('the 2.0.0 replica processes to exit', async () => (oldPids.some(isAlive) ? undefined : true), 30_000, 250);
    for (const pid of cp.replicaPids()) replicaPids.add(pid);
  }, 420_000);

  it('blue-green rollback after the switch: the edge moves back to the old replicas, which never stopped', async () => {
    const greenPids = cp.replicaPids();
    expect(greenPids).toHaveLength(9);
    const load = apiTraffic(`${cp.apiUrl}/api/v1/nodes`);
    const serving = watchServing(`${cp.apiUrl}/health`);
    const created = await cp.client().post<{ id: string }>('/api/v1/rollouts', {
      name: 'control-plane-2-2-0-blue-green',
      target: { component: 'operator', version: '2.2.0' },
      selector: { role: 'control-plane' },
      strategy: { order: 'blue-green', batch: { size: 9 }, blueGreen: { retireAfter: '10m' }, health: { minHealthyTime: '1s', timeout: '2m' } },
    });
    await waitFor(
      'the traffic to move to 2.2.0',
      async () => ((await events(created.id).catch(() => [])).some((e) => e.kind === 'rollout.traffic_switched') ? true : undefined),
      300_000,
      500,
    );
    await waitFor('the edge to answer with 2.2.0', async () => (serving.samples.at(-1)?.version === '2.2.0' ? true : undefined), 30_000, 100);
    for (const pid of cp.replicaPids()) replicaPids.add(pid);

    // One region alone cannot move back: the traffic moves for all of them at once. Nothing changes.
    const regional = await fetch(`${cp.apiUrl}/api/v1/rollouts/${created.id}/rollback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ region: 'eu-west' }),
    });
    expect(regional.status).toBe(409);
    expect(((await regional.json()) as { error: { code: string } }).error.code).toBe('ROLLBACK_REGION_BLUE_GREEN');
    expect((await cp.client().get<RolloutDetail>(`/api/v1/rollouts/${created.id}`)).status).toBe('running');

    const rollbackAt = Date.now();
    await cp.client().post(`/api/v1/rollouts/${created.id}/rollback`, {});
    const back = await waitForStatus(created.id, ['rolled_back', 'failed'], 180_000);
    await load.stop();
    await serving.stop();

    expect({ status: back.status, tasks: back.tasks.filter((t) => t.state !== 'rolled_back') }).toEqual({ status: 'rolled_back', tasks: [] });
    expect({ failed: load.stats.failed, errors: load.stats.errors.slice(0, 5) }).toEqual({ failed: 0, errors: [] });
    expect(changes(serving.samples), timeline(serving.samples, await events(created.id))).toEqual(['2.1.0', '2.2.0', '2.1.0']);
    // Back within the edge's refresh of the rollback (no replica had to start).
    const firstBack = serving.samples.find((s) => s.at >= rollbackAt && s.version === '2.1.0')!;
    expect(firstBack.at - rollbackAt).toBeLessThan(5_000);
    // The 2.1.0 replicas are the very processes that ran before the rollout.
    expect(greenPids.every(isAlive)).toBe(true);
    await waitFor(
      'only the nine 2.1.0 replicas live',
      async () => {
        const live = (await cp.replicas().catch(() => [] as ReplicaView[])).filter((r) => r.live);
        return live.length === 9 && live.every((r) => r.version === '2.1.0' && r.ready) ? true : undefined;
      },
      60_000,
      500,
    );
    expect(cp.replicaPids().sort()).toEqual([...greenPids].sort());
  }, 420_000);
  it('region by region: one region at a time, a gate before each new region, never fewer than 2 ready per region', async () => {
    const sampler = watchReplicas(cp);
    const load = apiTraffic(`${cp.apiUrl}/api/v1/nodes`, 4);
    const created = await cp.client().post<{ id: string }>('/api/v1/rollouts', {
      name: 'control-plane-2-3-0-regions',
      target: { component: 'operator', version: '2.3.0' },
      selector: { role: 'control-plane' },
      strategy: { order: 'region-by-region', batch: { size: 3 }, minAvailablePerRegion: 2, gateBetweenRegions: true, health: { minHealthyTime: '1s', timeout: '2m' } },
    });
    let gates = 0;
    let end: RolloutDetail | undefined;
    while (!end) {
      const r = await waitForStatus(created.id, ['awaiting_approval', 'completed', 'failed', 'awaiting_decision', 'aborted'], 300_000);
      if (r.status !== 'awaiting_approval') end = r;
      else {
        gates++;
        await cp.client().post(`/api/v1/rollouts/${created.id}/approve`, {});
        await waitFor('the gate to open', async () => ((await cp.client().get<RolloutDetail>(`/api/v1/rollouts/${created.id}`)).status !== 'awaiting_approval' ? true : undefined), 30_000, 200);
      }
      expect(gates).toBeLessThanOrEqual(2);
    }
    await load.stop();
    await sampler.stop();

    expect({ status: end.status, tasks: end.tasks.filter((t) => t.state !== 'done') }).toEqual({ status: 'completed', tasks: [] });
    expect({ failed: load.stats.failed, errors: load.stats.errors.slice(0, 5) }).toEqual({ failed: 0, errors: [] });
    for (const region of REGIONS) expect(sampler.minReady.get(region), region).toBeGreaterThanOrEqual(2);
    const log = await events(created.id);
    expect(log.filter((e) => e.kind === 'rollout.gate_reached')).toHaveLength(2);
    expect(gates).toBe(2);
    // The regions in turn: each region's three nodes start before any node of the next one.
    const regionOf = new Map(cp.nodes.map((n) => [n.hostname, n.region]));
    const order = log.filter((e) => e.kind === 'rollout.node_started').map((e) => regionOf.get(String(e.data.hostname)));
    expect(order).toHaveLength(9);
    const groups = order.filter((r, i) => i === 0 || order[i - 1] !== r);
    expect([...groups].sort()).toEqual([...REGIONS].sort());
    const live = (await cp.replicas()).filter((r) => r.live && r.ready);
    expect(live.map((r) => r.version)).toEqual(Array(9).fill('2.3.0'));
    for (const pid of cp.replicaPids()) replicaPids.add(pid);
  }, 420_000);
});
