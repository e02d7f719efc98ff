import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { ApiCallError, type ApiClient } from '../../src/api-client.js';
import { isAlive, LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { signArtifact } from '../../src/signing.js';
import type { EventRow } from '../../src/store/events.js';
import type { HookRunView } from '../../src/store/hook-runs.js';
import type { NodeView } from '../../src/store/nodes.js';
import { buildArchive, publisher, sha256File } from '../agent/artifact-fixtures.js';
import { BUNDLE } from '../support/processes.js';

// Rollout hooks with real processes: a real operator (embedded Postgres) runs preRollout and
// postRollout on its leader, two real agents run preNode and postNode as shell commands around
// drain and install; every hook appends a line to a file this test reads.

const HOSTS = ['hk-worker-1', 'hk-worker-2'] as const;
const OK = '#!/bin/sh\nexit 0\n';

interface Task {
  node_id: string;
  hostname: string;
  state: string;
  last_error: string | null;
  hooks: HookRunView[];
}
interface RolloutDetail {
  id: string;
  status: string;
  tasks: Task[];
  hooks: HookRunView[];
}

describe('rollout hooks end to end: real operator, real agents, shell hooks and a webhook', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-hooks-'));
  const fleet = new LocalFleet({ bin: BUNDLE, dir: join(dir, 'fleet') });
  let api: ApiClient;
  let keyFile: string;
  let webhook: Server;
  let webhookUrl: string;
  const webhookBodies: Record<string, unknown>[] = [];
  let lineNo = 0;
  let listen = '';
  const operatorArgs = ['--heartbeat-grace', '3s', '--heartbeat-interval', '1s'];

  const nodes = () => api.get<NodeView[]>('/api/v1/nodes');
  const rollout = (id: string) => api.get<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const eventsOf = (id: string, prefix = 'rollout.') => api.get<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}${prefix ? `&kind_prefix=${prefix}` : ''}&limit=1000`);
  const waitStatus = (id: string, status: string, timeoutMs = 90_000) =>
    waitFor(
      `rollout ${id} to be ${status}`,
      async () => {
        const r = await rollout(id);
        if (['failed', 'rolled_back', 'aborted', 'completed'].includes(r.status) && r.status !== status) throw new Error(`rollout ended ${r.status}: ${JSON.stringify(r.tasks)}`);
        return r.status === status ? r : undefined;
      },
      timeoutMs,
    );
  const agentArgs = () => ['--max-instances', '4', '--heartbeat-interval', '1s', '--trusted-key', keyFile];
  const startAgent = (host: string) => fleet.startAgent(host, 'us-east', agentArgs());

  /** A fresh file for a test's hook lines, and a hook command appending `words` (expanded by sh) to it. */
  function lines(): { file: string; read: () => string[]; hook: (words: string) => string[] } {
    const file = join(dir, `hooks-${++lineNo}.log`);
    return {
      file,
      read: () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []),
      hook: (words: string) => ['/bin/sh', '-c', `echo "${words}" >> ${file}; echo "output of ${words}"`],
    };
  }

  async function publish(version: string): Promise<void> {
    const archive = await buildArchive(dir, { 'web-server': `web ${version}`, health: OK });
    const sha256 = sha256File(archive);
    const signature = signArtifact(publisher.privatePem, { component: 'web', version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature, public_key: publisher.publicPem });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(archive) });
    const text = await response.text();
    expect(response.status, text).toBe(201);
    await api.post(`/api/v1/artifacts/${(JSON.parse(text) as { id: string }).id}/bless`);
  }

  const spec = (name: string, version: string, hooks: Record<string, unknown>, strategy: Record<string, unknown> = {}, selector: Record<string, unknown> = { regions: ['us-east'] }) => ({
    name,
    target: { component: 'web', version },
    selector,
    strategy: { batch: { size: 1 }, drain: { mode: 'migrate', timeout: '1m' }, health: { minHealthyTime: '0s', timeout: '1m' }, ...strategy },
    hooks,
  });

  beforeAll(async () => {
    keyFile = join(dir, 'drydock-signing.pub');
    writeFileSync(keyFile, publisher.publicPem);
    webhook = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        webhookBodies.push(JSON.parse(body) as Record<string, unknown>);
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ticket closed');
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    webhookUrl = `http://127.0.0.1:${(webhook.address() as { port: number }).port}/close`;
    listen = `127.0.0.1:${await freePort()}`;
    await fleet.startOperator(listen, operatorArgs);
    api = fleet.client();
    for (const host of HOSTS) startAgent(host);
    await fleet.waitForNodes(2, 60_000);
    for (const v of ['1.0.0', '2.0.0', '2.1.0', '2.2.0', '2.3.0', '2.4.0']) await publish(v);
    for (const n of await nodes()) await api.request('PUT', `/api/v1/nodes/${n.id}/components/web`, { version: '1.0.0' });
    await waitFor('both nodes on web 1.0.0', async () => ((await nodes()).every((n) => n.components.web === '1.0.0') ? true : undefined), 30_000);
  }, 120_000);

  afterAll(async () => {
    await fleet.stop();
    await new Promise((resolve) => webhook?.close(resolve));
    expect([...fleet.spawnedPids].filter(isAlive)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs every hook exactly once per node, in order: preRollout, then per node preNode before the install and postNode after verify, then postRollout', async () => {
    const log = lines();
    const created = await api.post<RolloutDetail>(
      '/api/v1/rollouts',
      spec('hooks-happy', '2.0.0', {
        preRollout: [{ run: log.hook('preRollout node=[$DRYDOCK_NODE] to=$DRYDOCK_TO_VERSION'), timeout: '30s' }],
        preNode: [{ run: log.hook('preNode $DRYDOCK_NODE $DRYDOCK_FROM_VERSION $DRYDOCK_TO_VERSION $DRYDOCK_COMPONENT $TICKET'), timeout: '30s', env: { TICKET: 'CHG-42' } }],
        postNode: [{ run: log.hook('postNode $DRYDOCK_NODE $DRYDOCK_PHASE'), timeout: '30s' }],
        postRollout: [{ webhook: webhookUrl, timeout: '10s', env: { TICKET: 'CHG-42' } }],
      }),
    );
    const done = await waitStatus(created.id, 'completed');
    expect(log.read()).toEqual([
      'preRollout node=[] to=2.0.0',
      'preNode hk-worker-1 1.0.0 2.0.0 web CHG-42',
      'postNode hk-worker-1 postNode',
      'preNode hk-worker-2 1.0.0 2.0.0 web CHG-42',
      'postNode hk-worker-2 postNode',
    ]);
    expect(webhookBodies).toEqual([
      expect.objectContaining({ rollout_id: created.id, phase: 'postRollout', component: 'web', to_version: '2.0.0', node: '', hook_id: `${created.id}/-/postRollout/0`, env: { TICKET: 'CHG-42' } }),
    ]);
    expect((await nodes()).map((n) => [n.hostname, n.components.web, n.status]).sort()).toEqual(HOSTS.map((h) => [h, '2.0.0', 'ready']));

    // The API shows every run with its outcome and output tail, per rollout and per task.
    expect(done.hooks.map((h) => [h.point, h.status, h.attempt])).toEqual([
      ['preRollout', 'succeeded', 1],
      ['preNode', 'succeeded', 1],
      ['preNode', 'succeeded', 1],
      ['postNode', 'succeeded', 1],
      ['postNode', 'succeeded', 1],
      ['postRollout', 'succeeded', 1],
    ]);
    const first = done.tasks.find((t) => t.hostname === 'hk-worker-1') as Task;
    expect(first.hooks.map((h) => [h.id, h.exit_code, h.output_tail])).toEqual([
      [`${created.id}/${first.node_id}/preNode/0`, 0, 'output of preNode hk-worker-1 1.0.0 2.0.0 web CHG-42\n'],
      [`${created.id}/${first.node_id}/postNode/0`, 0, 'output of postNode hk-worker-1 postNode\n'],
    ]);
    expect(done.hooks.at(-1)?.output_tail).toBe('ticket closed');

    // Events: one started and one completed per run; per node, preNode before the install and postNode after it.
    const events = await eventsOf(created.id, '');
    expect(events.filter((e) => e.kind === 'rollout.hook_started')).toHaveLength(6);
    expect(events.filter((e) => e.kind === 'rollout.hook_completed')).toHaveLength(6);
    expect(events.filter((e) => e.kind === 'rollout.hook_failed')).toHaveLength(0);
    for (const task of done.tasks) {
      const mine = events.filter((e) => e.node_id === task.node_id).map((e) => (e.kind.startsWith('rollout.hook_') ? `${e.kind}:${String(e.data.point)}` : e.kind));
      const order = ['rollout.node_started', 'rollout.hook_completed:preNode', 'node.component_version_set', 'rollout.hook_started:postNode', 'rollout.hook_completed:postNode', 'node.enabled', 'rollout.node_completed'];
      expect(mine.filter((k) => order.includes(k))).toEqual(order);
    }
    const all = events.map((e) => e.kind);
    expect(all.indexOf('rollout.hook_completed')).toBeLessThan(all.indexOf('rollout.batch_started'));
    expect(all.lastIndexOf('rollout.hook_completed')).toBeGreaterThan(all.lastIndexOf('rollout.node_completed'));
    const installs = await api.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=node.install_completed&limit=1000');
    for (const task of done.tasks) {
      const preDone = events.find((e) => e.node_id === task.node_id && e.kind === 'rollout.hook_completed' && e.data.point === 'preNode') as EventRow;
      const postStart = events.find((e) => e.node_id === task.node_id && e.kind === 'rollout.hook_started' && e.data.point === 'postNode') as EventRow;
      const installed = installs.find((e) => e.node_id === task.node_id && e.data.version === '2.0.0') as EventRow;
      expect(preDone.id).toBeLessThan(installed.id);
      expect(installed.id).toBeLessThan(postStart.id);
    }
  }, 120_000);

  it('a failing preNode hook fails the task and trips the breaker (maxConsecutiveFailures 2); the output is kept', async () => {
    const log = lines();
    const failing = ['/bin/sh', '-c', `echo "ran $DRYDOCK_NODE" >> ${log.file}; echo "cannot stop services" >&2; exit 3`];
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', spec('hooks-failing', '2.1.0', { preNode: [{ run: failing, timeout: '30s' }] }, { circuitBreaker: { maxConsecutiveFailures: 2 } }));
    const tripped = await waitStatus(created.id, 'awaiting_decision');
    expect(tripped.tasks.map((t) => [t.hostname, t.state])).toEqual(HOSTS.map((h) => [h, 'failed']));
    for (const t of tripped.tasks) {
      expect(t.last_error).toBe(`preNode hook 0 (${failing.join(' ')}) failed: exit code 3`);
      expect(t.hooks.map((h) => [h.status, h.exit_code, h.output_tail])).toEqual([['failed', 3, 'cannot stop services\n']]);
    }
    expect(log.read()).toEqual(HOSTS.map((h) => `ran ${h}`));
    const events = await eventsOf(created.id);
    expect(events.filter((e) => e.kind === 'rollout.hook_failed').map((e) => e.data.exit_code)).toEqual([3, 3]);
    expect(events.map((e) => e.kind)).toContain('rollout.circuit_breaker_tripped');
    // Nothing was installed: the hook ran before the install.
    expect((await nodes()).map((n) => n.components.web)).toEqual(['2.0.0', '2.0.0']);
    await api.post(`/api/v1/rollouts/${created.id}/decide`, { decision: 'abort' });
    await waitStatus(created.id, 'aborted');
  }, 120_000);

  it('with continueOnError a failing hook does not fail the task', async () => {
    const created = await api.post<RolloutDetail>(
      '/api/v1/rollouts',
      spec('hooks-lenient', '2.2.0', { postNode: [{ run: ['/bin/sh', '-c', 'exit 7'], timeout: '30s', continueOnError: true }] }, { circuitBreaker: { maxConsecutiveFailures: 1 } }),
    );
    const done = await waitStatus(created.id, 'completed');
    expect(done.tasks.map((t) => t.state)).toEqual(['done', 'done']);
    expect(done.hooks.map((h) => [h.point, h.status, h.exit_code])).toEqual([['postNode', 'failed', 7], ['postNode', 'failed', 7]]);
    expect((await nodes()).map((n) => n.components.web)).toEqual(['2.2.0', '2.2.0']);
  }, 120_000);

  it('a hook past its timeout is killed (its process group) and fails the task', async () => {
    const pidFile = join(dir, 'slow-hook.pid');
    const slow = ['/bin/sh', '-c', `echo $$ > ${pidFile}; sleep 60; echo finished >> ${pidFile}`];
    const created = await api.post<RolloutDetail>(
      '/api/v1/rollouts',
      spec('hooks-timeout', '2.3.0', { preNode: [{ run: slow, timeout: '2s' }] }, { circuitBreaker: { maxConsecutiveFailures: 1 } }, { hostnames: ['hk-worker-1'] }),
    );
    const tripped = await waitStatus(created.id, 'awaiting_decision', 60_000);
    const [task] = tripped.tasks as [Task];
    expect(task.state).toBe('failed');
    expect(task.last_error).toMatch(/^preNode hook 0 .* failed: timed out after 2 s \(process group killed\)$/);
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    expect(pid).toBeGreaterThan(0);
    await waitFor('the hook process to be gone', async () => (isAlive(pid) ? undefined : true), 10_000);
    expect(readFileSync(pidFile, 'utf8')).not.toContain('finished');
    await api.post(`/api/v1/rollouts/${created.id}/decide`, { decision: 'abort' });
    await waitStatus(created.id, 'aborted');
  }, 120_000);

  it('an agent killed -9 during a hook does not run it again after its restart: the journal adopts the run', async () => {
    const log = lines();
    const host = 'hk-worker-2';
    const created = await api.post<RolloutDetail>(
      '/api/v1/rollouts',
      spec('hooks-kill', '2.4.0', { preNode: [{ run: ['/bin/sh', '-c', `echo "start $DRYDOCK_NODE" >> ${log.file}; sleep 4; echo "end $DRYDOCK_NODE" >> ${log.file}`], timeout: '1m' }] }, {}, { hostnames: [host] }),
    );
    await waitFor('the hook to start', async () => (log.read().length === 1 ? true : undefined), 60_000);
    const agent = fleet.processes.get(host);
    expect(agent).toBeDefined();
    process.kill(agent?.pid as number, 'SIGKILL');
    await waitFor('the agent to be gone', async () => (isAlive(agent?.pid as number) ? undefined : true), 10_000);
    fleet.processes.delete(host);
    // The hook keeps running without its agent, and finishes.
    await waitFor('the hook to finish alone', async () => (log.read().length === 2 ? true : undefined), 20_000);
    startAgent(host);
    const done = await waitStatus(created.id, 'completed');
    expect(log.read()).toEqual([`start ${host}`, `end ${host}`]);
    expect(done.hooks.map((h) => [h.point, h.status, h.attempt, h.exit_code])).toEqual([['preNode', 'succeeded', 1, 0]]);
    const events = await eventsOf(created.id, 'rollout.hook_');
    expect(events.map((e) => e.kind)).toEqual(['rollout.hook_started', 'rollout.hook_completed']);
    expect((await nodes()).find((n) => n.hostname === host)?.components.web).toBe('2.4.0');
  }, 120_000);

  it('an operator killed -9 mid-rollout neither repeats a finished preRollout nor loses the node hook that ran meanwhile', async () => {
    const log = lines();
    const host = 'hk-worker-1';
    const created = await api.post<RolloutDetail>(
      '/api/v1/rollouts',
      spec(
        'hooks-operator-kill',
        '2.4.0',
        {
          preRollout: [{ run: log.hook('preRollout'), timeout: '30s' }],
          preNode: [{ run: ['/bin/sh', '-c', `echo "preNode start" >> ${log.file}; sleep 4; echo "preNode end" >> ${log.file}`], timeout: '1m' }],
          postRollout: [{ run: log.hook('postRollout'), timeout: '30s' }],
        },
        {},
        { hostnames: [host] },
      ),
    );
    await waitFor('the preNode hook to start', async () => (log.read().includes('preNode start') ? true : undefined), 60_000);
    await fleet.stopProcess('operator', 'SIGKILL');
    await fleet.startOperator(listen, operatorArgs);
    const done = await waitStatus(created.id, 'completed');
    expect(log.read()).toEqual(['preRollout', 'preNode start', 'preNode end', 'postRollout']);
    expect(done.hooks.map((h) => [h.point, h.status, h.attempt])).toEqual([
      ['preRollout', 'succeeded', 1],
      ['preNode', 'succeeded', 1],
      ['postRollout', 'succeeded', 1],
    ]);
    expect((await nodes()).find((n) => n.hostname === host)?.components.web).toBe('2.4.0');
  }, 120_000);

  it('refuses bad hook shapes with 400 ROLLOUT_SPEC_INVALID and stores nothing', async () => {
    const before = (await api.get<unknown[]>('/api/v1/rollouts')).length;
    const bad: unknown[] = [
      { preNode: [{ exec: ['/bin/true'] }] },
      { preNode: [{ run: ['/bin/true'], retries: 2 }] },
      { preNode: [{ run: ['/bin/true'], webhook: webhookUrl }] },
      { preNode: [{ run: [] }] },
      { preNode: [{ run: ['/bin/true'], timeout: 'soon' }] },
      { preNode: [{ run: ['/bin/true'], env: { DRYDOCK_NODE: 'x' } }] },
      { postRollout: [{ webhook: 'file:///etc/passwd' }] },
      { duringNode: [{ run: ['/bin/true'] }] },
      { preNode: '/bin/true' },
    ];
    for (const hooks of bad) {
      const error = await api.post('/api/v1/rollouts', spec('hooks-bad', '2.0.0', hooks as Record<string, unknown>)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, JSON.stringify(hooks)).toBeInstanceOf(ApiCallError);
      expect([(error as ApiCallError).status, (error as ApiCallError).code]).toEqual([400, 'ROLLOUT_SPEC_INVALID']);
    }
    expect((await api.get<unknown[]>('/api/v1/rollouts')).length).toBe(before);
    expect(await api.get<unknown[]>('/api/v1/events?after=0&kind_prefix=rollout.created&limit=1000').then((e) => e.filter((x) => (x as EventRow).data.name === 'hooks-bad'))).toEqual([]);
  });
});
