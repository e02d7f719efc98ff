import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { ApiCallError, type ApiClient } from '../../src/api-client.js';
import { isAlive, LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { InstallReport } from '../../src/domain/protocol.js';
import { signArtifact } from '../../src/signing.js';
import type { ApprovalView } from '../../src/store/approvals.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { EventRow } from '../../src/store/events.js';
import { assertTerm, StaleTermError } from '../../src/store/leases.js';
import type { NodeView } from '../../src/store/nodes.js';
import { openDb } from '../../src/store/open.js';
import { buildArchive, publisher, sha256File } from '../agent/artifact-fixtures.js';
import { ADMIN_URL } from '../support/db.js';
import { BUNDLE } from '../support/processes.js';
import { startTraffic } from '../support/endpoint-traffic.js';

// The rollout engine with real processes: a real operator (the built bundle, embedded
// Postgres in its data dir), six real agents in three regions that verify and install real
// signed archives, and a real deployment served while nodes are drained and upgraded.

const GRACE = '3s';
const TOKENS = { alice: 'alice-approver-token-0123456789', bob: 'bob-approver-token-0123456789', agent: 'agent-token-0123456789' } as const;
const REGIONS = ['us-east', 'eu-west', 'ap-south'] as const;
const HOSTS = REGIONS.flatMap((r) => [`${r}-worker-1`, `${r}-worker-2`]);
const OK = '#!/bin/sh\nexit 0\n';
// The broken build fails its health check everywhere but us-east, so the first region completes
// and the breaker trips on the next two nodes: there is something for `decide rollback` to undo.
const BROKEN_OUTSIDE_US_EAST = '#!/bin/sh\ncase "$DRYDOCK_COMPONENT_DIR" in */agents/us-east-*) exit 0 ;; esac\necho "broken build"\nexit 1\n';

interface Task {
  node_id: string;
  hostname: string;
  state: string;
  direction: string;
  batch: number;
}
interface RolloutDetail {
  id: string;
  status: string;
  batch_count: number;
  tasks: Task[];
  batches: { index: number; canary: boolean; nodes: { hostname: string }[] }[];
  approvals: ApprovalView[];
}

/** A fleet whose own reads (waitForNodes, recordInstancePids) carry a token. */
class TokenFleet extends LocalFleet {
  constructor(
    dir: string,
    private readonly token: string,
    env?: NodeJS.ProcessEnv,
  ) {
    super({ bin: BUNDLE, dir, ...(env ? { env } : {}) });
  }

  override client(token: string | undefined = this.token): ApiClient {
    return super.client(token);
  }
}


const rejection = async (promise: Promise<unknown>): Promise<ApiCallError> => {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiCallError) return error;
    throw error;
  }
  throw new Error('expected the call to be refused');
};

describe('rollouts end to end: real operator, six real agents, signed archives, live traffic', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-rollout-'));
  let fleet: TokenFleet;
  let alice: ApiClient;
  let bob: ApiClient;
  let deployment: DeploymentView;
  let listen: string;
  const operatorArgs: string[] = [];

  const nodes = () => alice.get<(NodeView & { installs: InstallReport[] })[]>('/api/v1/nodes');
  const rollout = (id: string) => alice.get<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const eventsOf = (id: string, prefix = 'rollout.') => alice.get<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}&kind_prefix=${prefix}&limit=1000`);
  const waitStatus = (id: string, status: string, timeoutMs: number) =>
    waitFor(
      `rollout ${id} to be ${status}`,
      async () => {
        const r = await rollout(id);
        if (['failed', 'rolled_back', 'aborted', 'completed'].includes(r.status) && r.status !== status) {
          throw new Error(`rollout ended ${r.status}: ${JSON.stringify(r.tasks)}`);
        }
        return r.status === status ? r : undefined;
      },
      timeoutMs,
    );
  const everyNodeOn = (version: string, timeoutMs = 30_000) =>
    waitFor(
      `every node on web ${version}`,
      async () => {
        const list = await nodes();
        return list.length === 6 && list.every((n) => n.components.web === version) ? list : undefined;
      },
      timeoutMs,
    );

  async function publish(version: string, health: string, options: { disruptive?: boolean; bless?: boolean } = {}): Promise<void> {
    const archive = await buildArchive(dir, { 'web-server': `web ${version}`, health });
    const sha256 = sha256File(archive);
    const signature = signArtifact(publisher.privatePem, { component: 'web', version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature, public_key: publisher.publicPem });
    if (options.disruptive) query.set('disruptive', 'true');
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKENS.alice}` },
      body: readFileSync(archive),
    });
    const text = await response.text();
    expect(response.status, text).toBe(201);
    if (options.bless) await alice.post(`/api/v1/artifacts/${(JSON.parse(text) as { id: string }).id}/bless`);
  }

  beforeAll(async () => {
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(
      tokensFile,
      stringify({
        tokens: [
          { name: 'alice', token: TOKENS.alice, role: 'approver' },
          { name: 'bob', token: TOKENS.bob, role: 'approver' },
          { name: 'agents', token: TOKENS.agent, role: 'agent' },
        ],
      }),
    );
    const keyFile = join(dir, 'drydock-signing.pub');
    writeFileSync(keyFile, publisher.publicPem);
    operatorArgs.push('--tokens', tokensFile, '--heartbeat-grace', GRACE, '--heartbeat-interval', '1s');
    fleet = new TokenFleet(join(dir, 'fleet'), TOKENS.alice);
    listen = `127.0.0.1:${await freePort()}`;
    await fleet.startOperator(listen, operatorArgs);
    alice = fleet.client(TOKENS.alice);
    bob = fleet.client(TOKENS.bob);
    for (const host of HOSTS) {
      fleet.startAgent(host, host.split('-worker')[0] as string, [
        '--token', TOKENS.agent,
        '--max-instances', '4',
        '--heartbeat-interval', '1s',
        '--trusted-key', keyFile,
        '--component-health-deadline', '5s',
      ]);
    }
    await fleet.waitForNodes(6, 60_000);

    await publish('1.0.0', OK);
    await publish('2.0.0', OK, { disruptive: true, bless: true });
    await publish('2.0.1-broken', BROKEN_OUTSIDE_US_EAST, { bless: true });
    await publish('2.1.0', OK, { bless: true });
    // Every node starts on 1.0.0 (set by hand, before any instance runs there).
    for (const n of await nodes()) await alice.request('PUT', `/api/v1/nodes/${n.id}/components/web`, { version: '1.0.0' });
    await everyNodeOn('1.0.0');

    deployment = await alice.post<DeploymentView>('/api/v1/deployments', {
      name: 'hello',
      replicas: 3,
      min_available: 2,
      workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' },
    });
    await waitFor(
      'three healthy endpoints',
      async () => {
        const list = await alice.get<{ healthy: boolean }[]>(`/api/v1/deployments/${deployment.id}/endpoints`);
        return list.filter((e) => e.healthy).length === 3 ? list : undefined;
      },
      30_000,
    );
    await fleet.recordInstancePids();
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('(a) upgrades every node 1.0.0 → 2.0.0 after a second approver approves: canary, region by region, drained by migration, zero failed requests', async () => {
    const traffic = startTraffic(alice, deployment.id);
    await waitFor('traffic to flow', async () => (traffic.stats.sent > 20 ? true : undefined), 10_000);

    const created = await alice.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'web-2-0-0',
      target: { component: 'web', version: '2.0.0' },
      selector: { regions: [...REGIONS] },
      strategy: {
        order: 'region-by-region',
        canary: { nodes: 1, soak: '1s' },
        batch: { size: 2 },
        maxUnavailablePerRegion: 2,
        drain: { mode: 'migrate', timeout: '2m' },
        health: { minHealthyTime: '1s', timeout: '1m' },
      },
      approval: { required: true, distinctApprover: true },
    });
    expect(created.status).toBe('awaiting_approval');
    expect(created.batches.map((b) => [b.canary, b.nodes.map((n) => n.hostname)])).toEqual([
      [true, ['us-east-worker-1']],
      [false, ['us-east-worker-2']],
      [false, ['eu-west-worker-1', 'eu-west-worker-2']],
      [false, ['ap-south-worker-1', 'ap-south-worker-2']],
    ]);
    const own = await rejection(alice.post(`/api/v1/rollouts/${created.id}/approve`, {}));
    expect([own.status, own.code]).toEqual([403, 'DISTINCT_APPROVER_REQUIRED']);
    expect((await rollout(created.id)).status).toBe('awaiting_approval');
    expect((await bob.post<RolloutDetail>(`/api/v1/rollouts/${created.id}/approve`, {})).status).toBe('running');

    const done = await waitStatus(created.id, 'completed', 150_000);
    expect(done.tasks.map((t) => [t.hostname, t.state, t.direction]).sort()).toEqual(HOSTS.map((h) => [h, 'done', 'forward']).sort());
    const sentAtEnd = traffic.stats.sent;
    await waitFor('more traffic after the rollout', async () => (traffic.stats.sent > sentAtEnd + 30 ? true : undefined), 20_000);
    const stats = await traffic.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.sent).toBeGreaterThan(100);
    await fleet.recordInstancePids();

    // The world: every node runs 2.0.0, is ready and schedulable again; no drift.
    const list = await everyNodeOn('2.0.0');
    for (const n of list) expect([n.hostname, n.status, n.draining]).toEqual([n.hostname, 'ready', false]);
    expect(await alice.get('/api/v1/drift')).toEqual({ drift: false, expected: { web: '2.0.0' }, nodes: [] });
    const health = await alice.get<{ status: string }>(`/api/v1/deployments/${deployment.id}/health`);
    expect(health.status).toBe('healthy');

    // The order: the canary first, then one region after another; each node once.
    const started = (await eventsOf(created.id, 'rollout.node_started')).map((e) => e.data.hostname);
    expect(started[0]).toBe('us-east-worker-1');
    expect(started.map((h) => (h as string).split('-worker')[0])).toEqual(['us-east', 'us-east', 'eu-west', 'eu-west', 'ap-south', 'ap-south']);
    expect((await eventsOf(created.id, 'rollout.node_completed')).map((e) => e.data.hostname).sort()).toEqual([...HOSTS].sort());
    // Nodes were drained by live migration (make-before-break) before the disruptive install.
    expect((await eventsOf(created.id, 'node.drain_started')).length).toBe(6);
    const migrations = await alice.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=instance.migration_completed');
    expect(migrations.length).toBeGreaterThanOrEqual(3);
    const approvedBy = (await eventsOf(created.id, 'rollout.approved')).map((e) => e.actor);
    expect(approvedBy).toEqual(['bob']);
  });

  it('(b) trips the circuit breaker after 2 consecutive failures; failed nodes revert by themselves; decide rollback returns the completed ones', async () => {
    const created = await alice.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'web-broken',
      target: { component: 'web', version: '2.0.1-broken' },
      selector: { regions: [...REGIONS] },
      strategy: {
        order: 'region-by-region',
        batch: { size: 1 },
        drain: { mode: 'none' },
        health: { minHealthyTime: '1s', timeout: '1m' },
        circuitBreaker: { maxConsecutiveFailures: 2 },
      },
    });
    expect(created.status).toBe('running');
    const tripped = await waitStatus(created.id, 'awaiting_decision', 90_000);
    const byHost = (r: RolloutDetail) => Object.fromEntries(r.tasks.map((t) => [t.hostname, t.state]));
    expect(byHost(tripped)).toEqual({
      'us-east-worker-1': 'done',
      'us-east-worker-2': 'done',
      'eu-west-worker-1': 'failed',
      'eu-west-worker-2': 'failed',
      'ap-south-worker-1': 'pending',
      'ap-south-worker-2': 'pending',
    });
    const failedIds = tripped.tasks.filter((t) => t.state === 'failed').map((t) => t.node_id);
    const trips = await eventsOf(created.id, 'rollout.circuit_breaker_tripped');
    expect(trips).toHaveLength(1);
    expect((trips[0]?.data.failed_nodes as string[]).sort()).toEqual([...failedIds].sort());
    expect(trips[0]?.data.reason).toMatch(/2 consecutive/);
    expect(tripped.approvals.find((a) => a.kind === 'continuation')).toMatchObject({
      status: 'pending',
      options: ['continue_anyway', 'rollback_completed_batches', 'abort'],
    });

    // The failed nodes are back on 2.0.0 by themselves: the agent reverted, and says why.
    await waitFor(
      'the failed nodes back on 2.0.0',
      async () => {
        const list = (await nodes()).filter((n) => failedIds.includes(n.id));
        return list.every((n) => n.components.web === '2.0.0' && n.installs.some((i) => i.version === '2.0.1-broken' && i.phase === 'reverted')) ? list : undefined;
      },
      20_000,
    );
    for (const id of failedIds) {
      const install = (await alice.get<NodeView & { installs: InstallReport[] }>(`/api/v1/nodes/${id}`)).installs.find((i) => i.component === 'web');
      expect(install).toMatchObject({ version: '2.0.1-broken', phase: 'reverted' });
      expect(install?.reason).toContain('broken build');
    }
    // Nothing new starts while a human decides.
    await new Promise((r) => setTimeout(r, 2000));
    const held = await rollout(created.id);
    expect(held.status).toBe('awaiting_decision');
    expect(byHost(held)['ap-south-worker-1']).toBe('pending');
    expect(await eventsOf(created.id, 'rollout.node_started')).toHaveLength(4);
    expect((await eventsOf(created.id, 'rollout.circuit_breaker_tripped')).length).toBe(1);

    await bob.post(`/api/v1/rollouts/${created.id}/decide`, { decision: 'rollback' });
    const rolledBack = await waitStatus(created.id, 'rolled_back', 60_000);
    expect(byHost(rolledBack)).toEqual({
      'us-east-worker-1': 'rolled_back',
      'us-east-worker-2': 'rolled_back',
      'eu-west-worker-1': 'failed',
      'eu-west-worker-2': 'failed',
      'ap-south-worker-1': 'skipped',
      'ap-south-worker-2': 'skipped',
    });
    // Newest batch first.
    const back = (await eventsOf(created.id, 'rollout.node_started')).filter((e) => e.data.direction === 'rollback').map((e) => e.data.hostname);
    expect(back).toEqual(['us-east-worker-2', 'us-east-worker-1']);
    await everyNodeOn('2.0.0');
    expect((await alice.get<{ drift: boolean }>('/api/v1/drift')).drift).toBe(false);
    expect((await alice.get<ApprovalView[]>(`/api/v1/approvals?rollout_id=${created.id}`))[0]).toMatchObject({ kind: 'continuation', status: 'decided', decision: 'rollback', decided_by: 'bob' });
  });

  it('(c) survives kill -9 of the operator mid-rollout: the restarted operator finishes it, each node upgraded exactly once', async () => {
    const traffic = startTraffic(alice, deployment.id);
    await waitFor('traffic to flow', async () => (traffic.stats.sent > 20 ? true : undefined), 10_000);
    const created = await alice.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'web-2-1-0',
      target: { component: 'web', version: '2.1.0' },
      selector: { regions: [...REGIONS] },
      strategy: { order: 'rolling', batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '2s', timeout: '2m' } },
    });
    await waitFor(
      'two nodes done and one in flight',
      async () => {
        const r = await rollout(created.id);
        const done = r.tasks.filter((t) => t.state === 'done').length;
        return done >= 2 && r.tasks.some((t) => ['installing', 'verifying'].includes(t.state)) ? r : undefined;
      },
      60_000,
      100,
    );
    const first = fleet.processes.get('operator');
    if (!first) throw new Error('no operator process');
    await fleet.stopProcess('operator', 'SIGKILL');
    expect(isAlive(first.pid)).toBe(false);

    await fleet.startOperator(listen, operatorArgs);
    const second = fleet.processes.get('operator');
    expect(second?.pid).not.toBe(first.pid);
    const done = await waitStatus(created.id, 'completed', 90_000);
    expect(done.tasks.map((t) => [t.hostname, t.state, (t as Task & { last_error: string | null }).last_error])).toEqual(
      done.tasks.map((t) => [t.hostname, 'done', null]),
    );
    await everyNodeOn('2.1.0');

    // Each node exactly once: one start, one completion, one version change by this rollout.
    const count = (events: EventRow[]) => {
      const perNode = new Map<string, number>();
      for (const e of events) perNode.set(e.node_id as string, (perNode.get(e.node_id as string) ?? 0) + 1);
      return perNode;
    };
    const ids = done.tasks.map((t) => t.node_id).sort();
    for (const kind of ['rollout.node_started', 'rollout.node_completed', 'node.component_version_set']) {
      const perNode = count(await eventsOf(created.id, kind));
      expect([kind, [...perNode.keys()].sort()]).toEqual([kind, ids]);
      expect([kind, [...perNode.values()].every((n) => n === 1)]).toEqual([kind, true]);
    }
    expect((await eventsOf(created.id, 'rollout.completed')).length).toBe(1);
    // The data plane never depended on the operator.
    const stats = await traffic.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(isAlive(second?.pid as number)).toBe(true);
    for (const pid of fleet.spawnedPids) if (pid !== first.pid) expect(isAlive(pid)).toBe(true);
  });

  it('(d) a downgrade is refused by preflight without allowDowngrade; with it the real agents install the older version, and rollback returns them', async () => {
    const hosts = ['ap-south-worker-1', 'ap-south-worker-2'];
    const body = {
      name: 'web-back-to-2-0-0',
      target: { component: 'web', version: '2.0.0' },
      selector: { hostnames: hosts },
      strategy: { batch: { size: 1 }, health: { minHealthyTime: '1s', timeout: '1m' } },
    };
    const refused = await rejection(alice.post('/api/v1/rollouts', body));
    expect([refused.status, refused.code, refused.details.failed]).toEqual([409, 'PREFLIGHT_FAILED', ['downgrade']]);

    const created = await alice.post<RolloutDetail>('/api/v1/rollouts', { ...body, allowDowngrade: true });
    await waitStatus(created.id, 'completed', 90_000);
    const onHosts = async () => (await nodes()).filter((n) => hosts.includes(n.hostname));
    for (const n of await onHosts()) {
      expect(n.components.web).toBe('2.0.0');
      expect(n.installs.find((i) => i.component === 'web')).toMatchObject({ version: '2.0.0', previous_version: '2.1.0', phase: 'done' });
    }
    const set = await eventsOf(created.id, 'node.component_version_set');
    expect(set.map((e) => [e.data.version, e.data.rollback])).toEqual([
      ['2.0.0', true],
      ['2.0.0', true],
    ]);

    await alice.post(`/api/v1/rollouts/${created.id}/rollback`);
    await waitStatus(created.id, 'rolled_back', 90_000);
    for (const n of await onHosts()) expect(n.components.web).toBe('2.1.0');
  });
});

describe('two operators on one Postgres server: only the leader acts, a deposed leader cannot write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-leader-'));
  const name = `drydock_e2e_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  let fleet: LocalFleet;
  const urls = new Map<string, string>();

  const leaseRow = async () => {
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      return (await client.query<{ holder: string; term: string }>(`SELECT holder, term FROM leases WHERE name = 'reconciler'`)).rows[0];
    } finally {
      await client.end();
    }
  };
  const logSays = (proc: string, message: string) =>
    readFileSync(fleet.processes.get(proc)?.log ?? join(dir, `${proc}.log`), 'utf8')
      .split('\n')
      .some((line) => line.includes(`"msg":"${message}"`));
  const noTargets = (rolloutName: string) => ({
    name: rolloutName,
    target: { component: 'web', version: '1.0.0' },
    selector: { hostnames: ['nobody'] },
  });

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    fleet = new LocalFleet({ bin: BUNDLE, dir, env: { DATABASE_URL: url.toString() } });
    for (const proc of ['operator-a', 'operator-b']) {
      const listen = `127.0.0.1:${await freePort()}`;
      const started = fleet.spawn(proc, ['operator', '--listen', listen, '--heartbeat-grace', GRACE]);
      urls.set(proc, `http://${listen}`);
      await waitFor(
        `${proc} to answer /health/ready`,
        async () => {
          if (started.child.exitCode !== null) throw new Error(`${proc} exited with ${started.child.exitCode}`);
          return (await fetch(`http://${listen}/health/ready`)).ok ? true : undefined;
        },
        60_000,
      );
    }
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one leader holds the lease and runs the reconcilers; after it dies the other takes over with a higher term and the old term is refused', async () => {
    const pids = new Map([...fleet.processes].map(([proc, p]) => [p.pid, proc]));
    const lease = await waitFor('a leader', async () => leaseRow(), 15_000);
    const leader = pids.get(Number(lease.holder.split('-')[0]));
    expect(leader).toBeDefined();
    const follower = [...urls.keys()].find((p) => p !== leader) as string;
    expect(logSays(leader as string, 'leading the reconcilers')).toBe(true);
    expect(logSays(follower, 'leading the reconcilers')).toBe(false);

    // A rollout created through the follower is run by the leader's reconciler (a rollout with no
    // target nodes completes on its first tick).
    const post = (proc: string, path: string, body: unknown) =>
      fetch(`${urls.get(proc)}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const status = async (proc: string, id: string) => ((await (await fetch(`${urls.get(proc)}/api/v1/rollouts/${id}`)).json()) as { status: string }).status;
    const first = (await (await post(follower, '/api/v1/rollouts?override=artifact', noTargets('while-led'))).json()) as { id: string };
    await waitFor('the leader to complete the rollout', async () => ((await status(follower, first.id)) === 'completed' ? true : undefined), 10_000);
    expect(logSays(follower, 'leading the reconcilers')).toBe(false);

    // The leader dies. Until its lease expires nobody acts: the follower does not reconcile.
    await fleet.stopProcess(leader as string, 'SIGKILL');
    const second = (await (await post(follower, '/api/v1/rollouts?override=artifact', noTargets('after-kill'))).json()) as { id: string };
    await new Promise((r) => setTimeout(r, 2500));
    expect(await status(follower, second.id)).toBe('running');
    expect(logSays(follower, 'leading the reconcilers')).toBe(false);

    // Then the follower takes the lease with a higher term and finishes the work.
    await waitFor('the follower to complete the rollout', async () => ((await status(follower, second.id)) === 'completed' ? true : undefined), 20_000);
    const next = await leaseRow();
    expect(Number(next?.holder.split('-')[0])).toBe(fleet.processes.get(follower)?.pid);
    expect(Number(next?.term)).toBeGreaterThan(Number(lease.term));
    expect(logSays(follower, 'leading the reconcilers')).toBe(true);

    // A write fenced by the dead leader's term is refused, and nothing of it is committed.
    const db = await openDb({ databaseUrl: url.toString(), poolSize: 2 });
    try {
      for (const [holder, term] of [
        [lease.holder, Number(lease.term)],
        [next?.holder as string, Number(lease.term)],
      ] as const) {
        const write = db.transaction(async (tx) => {
          await assertTerm(tx, 'reconciler', holder, term);
          await tx.query(`UPDATE rollouts SET status = 'failed' WHERE id = $1`, [second.id]);
        });
        await expect(write).rejects.toBeInstanceOf(StaleTermError);
      }
      expect((await db.query<{ status: string }>('SELECT status FROM rollouts WHERE id = $1', [second.id]))[0]?.status).toBe('completed');
      // The live leader's term passes the same fence.
      await db.transaction((tx) => assertTerm(tx, 'reconciler', next?.holder as string, Number(next?.term)));
    } finally {
      await db.close();
    }
  });
});
