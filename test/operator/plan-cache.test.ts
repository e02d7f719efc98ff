// The dry run plans from the plan worker's kept instances, brought up to date by the rows
// written since its last read (plan-fleet-cache.ts). Whatever the fleet did in between — scaled
// up (rows inserted), moved on (rows updated), scaled down (rows deleted) — the dry run must
// answer what a plan from every row answers, and name exactly the instances on the drained node.
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { COMPLETE_READ_EVERY_MS, planFromStore } from '../../src/operator/rollout-planning.js';
import type { RunningOperator } from '../../src/operator/server.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

const SPEC = {
  name: 'pc',
  target: { component: 'tool', version: '2.0.0' },
  selector: { hostnames: ['pc-1'] },
  strategy: { batch: { size: 1 }, drain: { mode: 'migrate', nonMigratable: 'stop' } },
};

describe(`the dry run from the plan worker’s kept instances on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const nodes: FakeNode[] = [];

  const dryRun = async () => {
    const response = await api.post<{ plan: { moves: { instance_id: string; from_node: string }[] } }>('/api/v1/rollouts/plan', SPEC);
    expect(response.status).toBe(200);
    return response.body.plan;
  };
  /** The plan from every row, the way create plans (no kept instances). */
  const fromEveryRow = async () => {
    const result = await planFromStore(t.db, SPEC, [], op.ctx.version);
    if (!result.ok) throw new Error(JSON.stringify(result.issues));
    return JSON.parse(JSON.stringify(result.planned.plan)) as unknown;
  };
  const scale = async (replicas: number) => {
    const response = await api.request('PUT', '/api/v1/deployments/web', { name: 'web', replicas, workload: { command: 'sleep' } });
    expect([200, 201]).toContain(response.status);
    return waitFor(`web at ${replicas} running`, async () => {
      const list = await api.ok<InstanceView[]>('/api/v1/instances?deployment=web');
      return list.length === replicas && list.every((i) => i.status === 'running') && list;
    });
  };
  /** How many dry runs read every instance row, and how many only the rows written since (from /metrics). */
  const reads = async () => {
    const text = await (await fetch(`${op.url}/metrics`)).text();
    const count = (read: string) => Number(new RegExp(`^drydock_plan_instance_reads_total\\{read="${read}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
    return { complete: count('complete'), incremental: count('incremental') };
  };
  const onTarget = (list: InstanceView[]) => list.filter((i) => i.hostname === 'pc-1').map((i) => i.id).sort();

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    for (const hostname of ['pc-1', 'pc-2', 'pc-3']) {
      const node = await FakeNode.register(api, { hostname, max_instances: 8 });
      node.followDesiredInstances = true;
      node.startHeartbeats(100);
      nodes.push(node);
    }
  });
  afterAll(async () => {
    for (const node of nodes) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
  });

  it('answers what a plan from every row answers after inserts, updates and deletes', async () => {
    const three = await scale(3);
    const first = await dryRun();
    expect(first).toEqual(await fromEveryRow());
    expect(await reads()).toEqual({ complete: 1, incremental: 0 });
    expect(first.moves.map((m) => m.instance_id).sort()).toEqual(onTarget(three));

    const nine = await scale(9);
    const grown = await dryRun();
    expect(grown).toEqual(await fromEveryRow());
    expect(grown.moves.map((m) => m.instance_id).sort()).toEqual(onTarget(nine));
    expect(grown.moves.length).toBeGreaterThan(first.moves.length);
    // Rows inserted and updated: applied to the kept instances.
    expect(await reads()).toEqual({ complete: 1, incremental: 1 });

    const two = await scale(2);
    await waitFor('stopped instances removed', async () => (await t.db.query('SELECT id FROM instances')).length === 2);
    const shrunk = await dryRun();
    expect(shrunk).toEqual(await fromEveryRow());
    expect(shrunk.moves.map((m) => m.instance_id).sort()).toEqual(onTarget(two));
    // Rows deleted: the kept instances asked for every id to drop them, not for every row.
    expect(await reads()).toEqual({ complete: 1, incremental: 2 });

    // Nothing written since: the same plan again, from the kept instances.
    expect(await dryRun()).toEqual(shrunk);
    expect(await reads()).toEqual({ complete: 1, incremental: 3 });
  });

  it('streams the body, compressed like any large answer when the client accepts it', async () => {
    const raw = async (acceptEncoding?: string) => {
      const answer = await request(`${op.url}/api/v1/rollouts/plan`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(acceptEncoding ? { 'accept-encoding': acceptEncoding } : {}) },
        body: JSON.stringify(SPEC),
      });
      return { status: answer.statusCode, headers: answer.headers, body: Buffer.from(await answer.body.arrayBuffer()) };
    };
    const plain = await raw();
    expect(plain.status).toBe(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers['content-type']).toBe('application/json; charset=utf-8');
    const body = JSON.parse(plain.body.toString()) as { plan: { batches: { nodes: { hostname: string }[] }[] } };
    expect(body.plan.batches.flatMap((b) => b.nodes.map((n) => n.hostname))).toEqual(['pc-1']);
    const br = await raw('gzip, deflate, br');
    expect(br.headers['content-encoding']).toBe('br');
    expect(JSON.parse(brotliDecompressSync(br.body).toString())).toEqual(body);
    const gz = await raw('gzip');
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(gz.body).toString())).toEqual(body);
  });

  it('goes on serving after a client hangs up in the middle of the body', async () => {
    for (let k = 0; k < 3; k++) {
      const controller = new AbortController();
      const answer = await request(`${op.url}/api/v1/rollouts/plan`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(SPEC),
        signal: controller.signal,
      });
      expect(answer.statusCode).toBe(200);
      controller.abort();
      await answer.body.text().catch(() => undefined);
    }
    expect((await fetch(`${op.url}/health`)).status).toBe(200);
    expect((await api.post('/api/v1/rollouts/plan', SPEC)).status).toBe(200);
  });

  it('reads every row again once the last complete read is older than COMPLETE_READ_EVERY_MS, then incrementally again', async () => {
    await dryRun();
    const before = await reads();
    await dryRun();
    expect(await reads()).toEqual({ complete: before.complete, incremental: before.incremental + 1 });
    // Only Date moves (timers stay real): the operator's clock says the last complete read is old.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + COMPLETE_READ_EVERY_MS + 1000 });
    try {
      await dryRun();
      expect(await reads()).toEqual({ complete: before.complete + 1, incremental: before.incremental + 1 });
      await dryRun();
      expect(await reads()).toEqual({ complete: before.complete + 1, incremental: before.incremental + 2 });
    } finally {
      vi.useRealTimers();
    }
  });
});
