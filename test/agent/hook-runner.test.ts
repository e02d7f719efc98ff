import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeHookRunner } from '../../src/agent/hooks/node-hook-runner.js';
import { isAlive, waitFor } from '../../src/demo/local-fleet.js';
import type { DesiredHook } from '../../src/domain/protocol.js';
import { callWebhook } from '../../src/hooks/call-webhook.js';
import { awaitHook, hookFiles, spawnHook } from '../../src/hooks/run-command.js';

// The hook runner with real processes and a real HTTP server on loopback.

describe('hook runner', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-hook-runner-'));
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const listen = async (handler: Parameters<typeof createServer>[1]): Promise<string> => {
    const server = createServer(handler);
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  };

  it('keeps the last 4 KiB of output, passes DRYDOCK_* and the hook env, and none of the agent environment', async () => {
    process.env.AGENT_SECRET_FOR_TEST = 'must-not-leak';
    const files = hookFiles(dir, 'tail');
    const script = 'i=0; while [ $i -lt 1000 ]; do printf "line-%04d\\n" $i; i=$((i+1)); done; echo "[$DRYDOCK_PHASE $OWN ${AGENT_SECRET_FOR_TEST:-unset}]"';
    const { pid, exited } = spawnHook(['/bin/sh', '-c', script], { DRYDOCK_PHASE: 'preNode', OWN: 'mine' }, files);
    const outcome = await awaitHook(pid, files, Date.now() + 10_000, 10_000, exited);
    expect(outcome).toMatchObject({ status: 'succeeded', exitCode: 0, reason: null });
    expect(Buffer.byteLength(outcome?.outputTail ?? '')).toBe(4096);
    expect(outcome?.outputTail.endsWith('line-0999\n[preNode mine unset]\n')).toBe(true);
    delete process.env.AGENT_SECRET_FOR_TEST;
  });

  it('turns NUL bytes of binary output into U+FFFD (the operator refuses NUL in any report)', async () => {
    const files = hookFiles(dir, 'binary');
    const { pid, exited } = spawnHook(['/bin/sh', '-c', "printf 'a\\000b'"], {}, files);
    const outcome = await awaitHook(pid, files, Date.now() + 10_000, 10_000, exited);
    expect(outcome?.outputTail).toBe('a\uFFFDb');
  });

  it('kills the whole process group at the deadline, children included', async () => {
    const files = hookFiles(dir, 'slow');
    const pidFile = join(dir, 'child.pid');
    const { pid, exited } = spawnHook(['/bin/sh', '-c', `sleep 60 & echo $! > ${pidFile}; wait`], {}, files);
    const outcome = await awaitHook(pid, files, Date.now() + 500, 500, exited);
    expect(outcome).toMatchObject({ status: 'failed', exitCode: null, reason: 'timed out after 0.5 s (process group killed)' });
    const child = Number(readFileSync(pidFile, 'utf8'));
    await waitFor('the background child to be gone', async () => (isAlive(child) ? undefined : true), 5_000);
  });

  it('webhooks: 2xx succeeds with the body as output, any other status fails, a silent server times out', async () => {
    const bodies: unknown[] = [];
    const ok = await listen((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        bodies.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    expect(await callWebhook(ok, { DRYDOCK_PHASE: 'postRollout', DRYDOCK_HOOK_ID: 'r/-/postRollout/0', TICKET: 'T-1' }, 5_000)).toMatchObject({ status: 'succeeded', reason: null });
    expect(bodies).toEqual([{ phase: 'postRollout', hook_id: 'r/-/postRollout/0', env: { TICKET: 'T-1' } }]);
    const broken = await listen((_req, res) => res.writeHead(503).end('maintenance'));
    expect(await callWebhook(broken, {}, 5_000)).toMatchObject({ status: 'failed', reason: 'HTTP 503', outputTail: 'maintenance' });
    const silent = await listen(() => {});
    expect(await callWebhook(silent, {}, 300)).toMatchObject({ status: 'failed', reason: 'timed out after 0.3 s' });
  });

  it('a new runner on the same data dir adopts a run it finds in the journal instead of running it again', async () => {
    const data = join(dir, 'agent-data');
    const counter = join(dir, 'count');
    const hook: DesiredHook = { id: 'r/n/preNode/0', attempt: 1, point: 'preNode', run: ['/bin/sh', '-c', `echo run >> ${counter}; sleep 1; echo out`], timeout_ms: 10_000, env: {} };
    const log = pino({ level: 'silent' });
    const first = new NodeHookRunner(data, () => {}, log);
    first.reconcile([hook]);
    await waitFor('the first runner to start it', async () => (first.reports([hook])[0]?.status === 'running' ? true : undefined), 5_000);
    first.stop(); // the agent goes away mid-hook; the hook keeps running
    const second = new NodeHookRunner(data, () => {}, log);
    expect(second.reports([hook])).toMatchObject([{ id: hook.id, attempt: 1, status: 'running' }]);
    second.reconcile([hook]);
    const report = await waitFor('the adopted run to finish', async () => {
      const [r] = second.reports([hook]);
      return r?.status === 'succeeded' ? r : undefined;
    }, 10_000);
    expect(report).toMatchObject({ exit_code: 0, output_tail: 'out\n' });
    expect(readFileSync(counter, 'utf8')).toBe('run\n');
    // Asked again (the desired state still lists it until the operator records it): not run again
    // (a start journals `running` before reconcile returns).
    second.reconcile([hook]);
    expect(second.reports([hook])).toMatchObject([{ status: 'succeeded' }]);
  });
});
