import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { isAlive, type LocalFleet } from '../../src/demo/local-fleet.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { ApprovalView } from '../../src/store/approvals.js';
import type { EventRow } from '../../src/store/events.js';
import type { NodeView } from '../../src/store/nodes.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, waitFor } from '../support/operator.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

// The CLI against the real operator bundle (embedded Postgres in its data dir) that is killed
// and started again on the same port and data dir, as a restart or a crash would: `events
// --follow` and `rollout watch` / `create --watch` must live through it and stay honest.
// The nodes are scripted agents (FakeNode) speaking the real protocol, so a rollout takes
// seconds and a node can be made to fail its install on purpose.

const TOKENS = { alice: 'alice-admin-token-0123456789', agent: 'agent-token-0123456789' } as const;
const NOTICE = /operator unreachable \(.+\), reconnecting in \d+\.\ds…/;

interface Rollout {
  id: string;
  status: string;
  tasks: { hostname: string; state: string }[];
  approvals: ApprovalView[];
}

/** One CLI process; its output is collected as it comes. */
class Cli {
  stdout = '';
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [BUNDLE, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

describe('the CLI across operator restarts: reconnects, resumes, and exits honestly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-cli-reconnect-'));
  const keys = generateSigningKeyPair();
  const operatorArgs: string[] = [];
  const clis: Cli[] = [];
  const fakes = new Map<string, FakeNode>();
  const failing = { stop: false, loops: [] as Promise<void>[] };
  let fleet: LocalFleet;
  let listen: string;
  let api: ApiClient;
  let env: NodeJS.ProcessEnv;

  const cli = (...args: string[]) => {
    const run = new Cli(args, env);
    clis.push(run);
    return run;
  };
  const rollout = (id: string) => api.ok<Rollout>(`/api/v1/rollouts/${id}`);
  const restartOperator = async (signal: NodeJS.Signals) => {
    const before = fleet.processes.get('operator')?.pid as number;
    await fleet.stopProcess('operator', signal);
    expect(isAlive(before)).toBe(false);
    await fleet.startOperator(listen, operatorArgs);
  };
  const writeSpec = (name: string, spec: Record<string, unknown>) => {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ name, ...spec }));
    return file;
  };

  async function publish(version: string, bless: boolean): Promise<void> {
    const bytes = randomBytes(64);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const query = new URLSearchParams({
      component: 'web',
      version,
      kind: 'binary',
      signature: signArtifact(keys.privatePem, { component: 'web', version, kind: 'binary', sha256 }),
      public_key: keys.publicPem,
    });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKENS.alice}` },
      body: new Uint8Array(bytes),
    });
    expect(response.status).toBe(201);
    if (bless) expect((await api.post(`/api/v1/artifacts/${((await response.json()) as { id: string }).id}/bless`)).status).toBe(200);
  }

  /** A node that installs whatever it is asked at once (a good build). */
  async function goodNode(hostname: string): Promise<void> {
    const fake = await FakeNode.register(api.withToken(TOKENS.agent), { hostname, region: 'us-east' });
    fake.components = { 'node-agent': 'test', web: '1.0.0' };
    fake.followDesiredComponents = true;
    fake.startHeartbeats(250);
    fakes.set(hostname, fake);
  }

  /** A node whose install of any new version is reverted by its health check (a broken build). */
  async function brokenNode(hostname: string): Promise<void> {
    const fake = await FakeNode.register(api.withToken(TOKENS.agent), { hostname, region: 'us-east' });
    fake.components = { 'node-agent': 'test', web: '1.0.0' };
    fakes.set(hostname, fake);
    failing.loops.push(
      (async () => {
        while (!failing.stop) {
          const desired = await fake.heartbeat().catch(() => undefined); // the operator may be restarting
          const wanted = desired?.components?.web?.version;
          if (wanted && wanted !== fake.components.web && !fake.installs.some((i) => i.version === wanted)) {
            fake.installs = [{ component: 'web', version: wanted, previous_version: '1.0.0', phase: 'reverted', reason: 'health check failed: broken build', updated_at: new Date().toISOString() }];
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      })(),
    );
  }

  beforeAll(async () => {
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: [{ name: 'alice', token: TOKENS.alice, role: 'admin' }, { name: 'agents', token: TOKENS.agent, role: 'agent' }] }));
    // A long grace: nodes that could not heartbeat while the operator was away stay ready.
    operatorArgs.push('--tokens', tokensFile, '--drain-timeout', '7m', '--heartbeat-grace', '30s', '--heartbeat-interval', '1s');
    fleet = await startTestFleet('cli-reconnect', operatorArgs);
    listen = fleet.operatorUrl.replace('http://', '');
    api = new ApiClient(fleet.operatorUrl, TOKENS.alice);
    env = { PATH: process.env.PATH, HOME: process.env.HOME, DRYDOCK_URL: fleet.operatorUrl, DRYDOCK_TOKEN: TOKENS.alice };
    for (const host of ['rc-good-1', 'rc-good-2', 'rc-drain']) await goodNode(host);
    for (const host of ['rc-broken-1', 'rc-broken-2']) await brokenNode(host);
    await publish('1.0.0', false);
    await publish('2.0.0', true);
    await publish('2.0.1', true);
    await waitFor('five ready nodes', async () => (await api.ok<NodeView[]>('/api/v1/nodes')).filter((n) => n.status === 'ready').length === 5, { timeoutMs: 20_000 });
  });

  afterAll(async () => {
    for (const run of clis) if (run.running) run.child.kill('SIGKILL');
    await Promise.all(clis.map((run) => run.exited));
    failing.stop = true;
    await Promise.all(failing.loops);
    for (const fake of fakes.values()) await fake.stopHeartbeats();
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect(clis.map((run) => run.child.pid as number).filter(isAlive)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('events --follow lives through an operator restart (SIGTERM) and prints every event exactly once, in id order', async () => {
    const follower = cli('events', '--follow', '--json');
    const printed = () => follower.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as EventRow).id);
    const logIds = async () => (await api.ok<EventRow[]>('/api/v1/events?after=0&limit=5000')).map((e) => e.id);
    const before = await logIds();
    await waitFor('the follower to print the log so far', async () => printed().at(-1) === before.at(-1), { timeoutMs: 20_000 });

    await restartOperator('SIGTERM');
    await waitFor('a reconnect notice', async () => NOTICE.test(follower.stderr), { timeoutMs: 20_000 });
    // New events after the restart: a cordon and an uncordon of one node.
    const node = fakes.get('rc-good-1') as FakeNode;
    expect((await api.post(`/api/v1/nodes/${node.id}/cordon`)).status).toBe(200);
    expect((await api.post(`/api/v1/nodes/${node.id}/uncordon`)).status).toBe(200);
    const [last] = await api.ok<EventRow[]>(`/api/v1/events?order=desc&limit=1&node_id=${node.id}`);
    await waitFor('the follower to print the events made after the restart', async () => (printed().at(-1) ?? 0) >= (last as EventRow).id, { timeoutMs: 20_000 });

    expect(follower.running).toBe(true);
    expect(follower.stderr).toContain('reconnected');
    const seen = printed();
    const upTo = (await logIds()).filter((id) => id <= (seen.at(-1) as number));
    expect(seen).toEqual(upTo); // all of them, once each, in order
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining([...before, (last as EventRow).id]));
    follower.child.kill('SIGINT');
    await follower.exited;
  });

  it('rollout create --watch lives through kill -9 of the operator mid-rollout and exits 0 when the rollout completes', async () => {
    const file = writeSpec('web-2-0-0', {
      target: { component: 'web', version: '2.0.0' },
      selector: { hostnames: ['rc-good-1', 'rc-good-2'] },
      strategy: { order: 'rolling', batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '2s', timeout: '1m' } },
    });
    const watch = cli('rollout', 'create', '-f', file, '--watch');
    const id = await waitFor('the rollout to be created', async () => /\(([0-9a-f-]{36})\)/.exec(watch.stdout)?.[1], { timeoutMs: 20_000 });
    await waitFor('the first node to be verifying', async () => (await rollout(id)).tasks.some((t) => t.state === 'verifying'), { timeoutMs: 20_000 });

    await restartOperator('SIGKILL');
    expect(await watch.exited).toBe(0);
    expect(watch.stdout).toMatch(/rollout completed\n$/);
    expect(watch.stderr).toMatch(NOTICE);
    expect(watch.stderr).toContain('reconnected');
    const done = await rollout(id);
    expect([done.status, done.tasks.map((t) => t.state)]).toEqual(['completed', ['done', 'done']]);
    expect(fakes.get('rc-good-2')?.components.web).toBe('2.0.0');
  });

  it('gives up after --reconnect-timeout with a clear message and exit 1; a watch of a rejected rollout exits 1', async () => {
    const created = await api.post<Rollout>('/api/v1/rollouts', {
      name: 'needs-approval',
      target: { component: 'web', version: '2.0.1' },
      selector: { hostnames: ['rc-good-1'] },
      strategy: { drain: { mode: 'none' } },
      approval: { required: true },
    });
    expect(created.body.status).toBe('awaiting_approval');
    const watch = cli('rollout', 'watch', created.body.id, '--reconnect-timeout', '2s');
    await waitFor('the watch to print the status', async () => watch.stdout.includes('awaiting_approval'), { timeoutMs: 20_000 });
    await fleet.stopProcess('operator', 'SIGKILL');
    expect(await watch.exited).toBe(1);
    expect(watch.stderr).toMatch(NOTICE);
    expect(watch.stderr).toMatch(/error: operator unreachable for \d+s \(ECONNREFUSED\); gave up after --reconnect-timeout 2s/);
    await fleet.startOperator(listen, operatorArgs);

    expect((await api.post(`/api/v1/rollouts/${created.body.id}/reject`, { reason: 'test' })).status).toBe(200);
    const rejected = cli('rollout', 'watch', created.body.id);
    expect(await rejected.exited).toBe(1);
    expect(rejected.stdout).toMatch(/rollout rejected\n$/);
  });

  it('answers a tripped breaker with either name style; the watch of a rollout that does not complete exits 1', async () => {
    const created = await api.post<Rollout>('/api/v1/rollouts', {
      name: 'web-broken',
      target: { component: 'web', version: '2.0.1' },
      selector: { hostnames: ['rc-broken-1', 'rc-broken-2'] },
      strategy: { order: 'rolling', batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '1s', timeout: '1m' }, circuitBreaker: { maxConsecutiveFailures: 1 } },
    });
    expect(created.status).toBe(201);
    const id = created.body.id;
    const watch = cli('rollout', 'watch', id);
    expect(await watch.exited).toBe(1);
    expect(watch.stdout).toContain(`rollout awaiting a decision: drydock rollout decide ${id} continue_anyway|rollback_completed_batches|abort`);
    const pending = async () => (await api.ok<ApprovalView[]>(`/api/v1/approvals?rollout_id=${id}&status=pending`)).filter((a) => a.kind === 'continuation');
    expect((await pending()).map((a) => a.options)).toEqual([['continue_anyway', 'rollback_completed_batches', 'abort']]);
    const show = cli('rollout', 'show', id);
    expect(await show.exited).toBe(0);
    expect(show.stdout).toContain('waiting for continuation approval: continue_anyway | rollback_completed_batches | abort');

    // An unknown decision is refused by the CLI with the list, and nothing changes.
    const wrong = cli('rollout', 'decide', id, 'keep-going');
    expect(await wrong.exited).toBe(1);
    expect(wrong.stderr).toContain('unknown decision "keep-going": use one of continue_anyway (or continue), rollback_completed_batches (or rollback), abort');
    expect((await rollout(id)).status).toBe('awaiting_decision');
    expect(await pending()).toHaveLength(1);

    // The short name is sent as the option it stands for.
    const go = cli('rollout', 'decide', id, 'continue');
    expect(await go.exited).toBe(0);
    const decided = async () => (await api.ok<ApprovalView[]>(`/api/v1/approvals?rollout_id=${id}&status=decided`)).map((a) => a.decision);
    expect(await decided()).toEqual(['continue_anyway']);
    // The second broken node trips it again; this time the API's own name.
    await waitFor('the breaker to trip again', async () => (await pending()).length === 1 && (await rollout(id)).status === 'awaiting_decision', { timeoutMs: 30_000 });
    const back = cli('rollout', 'decide', id, 'rollback_completed_batches');
    expect(await back.exited).toBe(0);
    expect((await decided()).sort()).toEqual(['continue_anyway', 'rollback_completed_batches']);

    const final = cli('rollout', 'watch', id);
    expect(await final.exited).toBe(1);
    const ended = await rollout(id);
    expect(['rolled_back', 'failed']).toContain(ended.status);
    expect(final.stdout).toMatch(new RegExp(`rollout ${ended.status}\\n$`));
    expect(ended.tasks.map((t) => t.state)).toEqual(['failed', 'failed']);
  });

  it('fails at once, without reconnecting, on answers that are not connection problems', async () => {
    const missing = cli('rollout', 'watch', 'no-such-rollout');
    expect(await missing.exited).toBe(1);
    expect(missing.stderr).toMatch(/^error: no rollout "no-such-rollout".*\[ROLLOUT_NOT_FOUND\]\n$/);
    const stranger = new Cli(['events', '--follow'], { ...env, DRYDOCK_TOKEN: 'not-a-token-0123456789' });
    clis.push(stranger);
    expect(await stranger.exited).toBe(1);
    expect(stranger.stderr).toMatch(/\[UNAUTHENTICATED\]\n$/);
    expect(stranger.stderr).not.toMatch(/reconnecting/);
    // Nothing listening at the start is a wrong address, not a restart.
    const nowhere = cli('events', '--follow', '--operator', `http://127.0.0.1:${await freePort()}`);
    expect(await nowhere.exited).toBe(1);
    expect(nowhere.stderr).toMatch(/^error: cannot reach the operator .*ECONNREFUSED/);
    const badTimeout = cli('rollout', 'watch', 'x', '--reconnect-timeout', 'soon');
    expect(await badTimeout.exited).toBe(1);
    expect(badTimeout.stderr).toContain('--reconnect-timeout must be a duration');
  });

  it('node drain sends no timeout unless asked: the operator --drain-timeout (7m) applies', async () => {
    const node = fakes.get('rc-drain') as FakeNode;
    const deadlineOf = async () => {
      const view = await api.ok<NodeView>(`/api/v1/nodes/${node.id}`);
      const drain = view.drain as { started_at: string; deadline: string };
      return Date.parse(drain.deadline) - Date.parse(drain.started_at);
    };
    const drain = cli('node', 'drain', 'rc-drain');
    expect(await drain.exited).toBe(0);
    expect(await deadlineOf()).toBe(7 * 60_000);
    expect(await cli('node', 'enable', 'rc-drain').exited).toBe(0);
    const bounded = cli('node', 'drain', 'rc-drain', '--timeout', '2m');
    expect(await bounded.exited).toBe(0);
    expect(await deadlineOf()).toBe(2 * 60_000);
    expect(await cli('node', 'enable', 'rc-drain').exited).toBe(0);

    // Help text wraps at the terminal width: compare it with single spaces.
    const help = (...args: string[]) => spawnSync(process.execPath, [BUNDLE, ...args, '--help'], { encoding: 'utf8' }).stdout.replace(/\s+/g, ' ');
    expect(help('node', 'drain')).toContain("default: the operator's --drain-timeout");
    expect(help('rollout', 'decide')).toContain('continue_anyway (or continue), rollback_completed_batches (or rollback), abort');
    for (const args of [['rollout', 'watch'], ['rollout', 'create'], ['events']]) expect(help(...args)).toMatch(/--reconnect-timeout <duration> .*\(default: "10m"\)/);
  });
});
