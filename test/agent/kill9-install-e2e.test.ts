import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { create as createTar } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { type FleetProcess, isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { ArtifactKind, InstallPhase, InstallReport } from '../../src/domain/protocol.js';
import { readJournal } from '../../src/agent/components/journal.js';
import { isSameProcessAlive } from '../../src/agent/drivers/process-driver.js';
import { signArtifact } from '../../src/signing.js';
import type { NodeView } from '../../src/store/nodes.js';
import { startTestFleet } from '../support/processes.js';
import { buildArchive, publisher, sha256File, tempDir } from './artifact-fixtures.js';

// kill -9 of a real agent process while it is in the middle of an install, then the same agent
// started again on the same data dir: the install must end `done` or `reverted`, with `current`
// on a complete version dir and the node reporting that version — never stuck half way.
// The phases are caught by watching the real operator's view of the node (GET /nodes/:id),
// which every phase change reaches at once (the agent heartbeats on each one):
// - installing: a `script` artifact whose `install` sleeps;
// - assessing: a `script` artifact whose `health` sleeps (shorter than the health deadline);
// - downloading: a binary artifact of random (incompressible) bytes, served slowly: the agent
//   talks to the operator through a pass-through proxy that throttles artifact downloads (a
//   48 MB artifact straight from the operator is fetched in well under a second on loopback,
//   too fast to land a kill in reliably).
// `verifying` lasts one journal write (the sha256 is computed while downloading and the
// signature check takes microseconds), so no outside observer can catch it reliably; it is
// covered by the simulated crashes of crash-recovery.test.ts.

const OK = '#!/bin/sh\nexit 0\n';
const BIG_MB = 12;
/** Throttle of artifact downloads through the proxy: BIG_MB takes about 5 s. */
const BLOB_BYTES_PER_TICK = 64 * 1024;
const BLOB_TICK_MS = 25;

/**
 * Forwards every request to the operator; responses of artifact blobs (`…/blob`) are passed
 * on at BLOB_BYTES_PER_TICK every BLOB_TICK_MS. Everything else goes through untouched.
 */
async function startSlowBlobProxy(target: string): Promise<{ url: string; close: () => Promise<void> }> {
  const upstream = new URL(target);
  const server = createServer((req, res) => {
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        if (!req.url?.split('?')[0]?.endsWith('/blob')) return void reply.pipe(res);
        const throttle = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            const parts: Buffer[] = [];
            for (let at = 0; at < chunk.length; at += BLOB_BYTES_PER_TICK) parts.push(chunk.subarray(at, at + BLOB_BYTES_PER_TICK));
            const next = () => {
              const part = parts.shift();
              if (!part) return callback();
              this.push(part);
              setTimeout(next, BLOB_TICK_MS);
            };
            next();
          },
        });
        pipeline(reply, throttle, res).catch(() => {});
      },
    );
    forward.on('error', () => res.destroy());
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type NodeDetail = NodeView & { installs: InstallReport[] };

describe('kill -9 of a real agent during each install phase', () => {
  let fleet: LocalFleet;
  let client: ApiClient;
  let node: NodeView;
  let agent: FleetProcess;
  let proxy: Awaited<ReturnType<typeof startSlowBlobProxy>>;
  const HOST = 'us-east-worker-9';
  const dir = tempDir('kill9-e2e');
  const agentDir = join(dir, 'agent');
  const keyFile = join(dir, 'drydock-signing.pub');
  /** PIDs of installer steps (written by the scripts themselves), to prove none outlives the test. */
  const stepPids: number[] = [];

  const startAgent = () => {
    // The last --operator and --data-dir win: through the proxy, and `current` links the test reads.
    agent = fleet.startAgent(HOST, 'us-east', [
      '--operator', proxy.url,
      '--heartbeat-interval', '1s',
      '--trusted-key', keyFile,
      '--component-health-deadline', '8s',
      '--data-dir', agentDir,
    ]);
  };

  beforeAll(async () => {
    writeFileSync(keyFile, publisher.publicPem);
    fleet = await startTestFleet('kill9');
    client = fleet.client();
    proxy = await startSlowBlobProxy(fleet.operatorUrl);
    startAgent();
    [node] = (await fleet.waitForNodes(1)) as [NodeView];
  }, 90_000);

  afterAll(async () => {
    await fleet?.stop();
    await proxy?.close();
    for (const pid of stepPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function publish(component: string, version: string, kind: ArtifactKind, archive: string): Promise<void> {
    const sha256 = sha256File(archive);
    const signature = signArtifact(publisher.privatePem, { component, version, kind, sha256 });
    const query = new URLSearchParams({ component, version, kind, signature, public_key: publisher.publicPem });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: readFileSync(archive),
    });
    expect(response.status, await response.text()).toBeLessThan(300);
  }

  async function setVersion(component: string, version: string): Promise<void> {
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/${component}`, { version });
  }

  /** Polls the operator's view of the node until `component` `version` is in one of `phases`. */
  async function waitForPhase(component: string, version: string, phases: readonly InstallPhase[], timeoutMs = 30_000, intervalMs = 200) {
    return waitFor(
      `${component} ${version} in ${phases.join('|')} on ${HOST}`,
      async () => {
        const view = await client.get<NodeDetail>(`/api/v1/nodes/${node.id}`);
        const install = view.installs.find((i) => i.component === component && i.version === version);
        return install && phases.includes(install.phase) ? { view, install } : undefined;
      },
      timeoutMs,
      intervalMs,
    );
  }

  /**
   * kill -9 the agent by PID, then start it again on the same data dir. Returns the phase the
   * killed agent's journal holds for `component`: proof of where the kill landed.
   */
  async function killAndRestart(component: string): Promise<InstallPhase | undefined> {
    const pid = agent.pid;
    await fleet.stopProcess(HOST, 'SIGKILL');
    expect(isAlive(pid)).toBe(false);
    expect(agent.child.signalCode).toBe('SIGKILL');
    const journal = readJournal(join(agentDir, 'components', 'journal.json'));
    startAgent();
    return journal.installs[component]?.phase;
  }

  const current = (component: string) => readlinkSync(join(agentDir, 'components', component, 'current'));
  const inCurrent = (component: string, file: string) => join(agentDir, 'components', component, 'current', file);

  /** A killed step may stay a zombie until init reaps it: that is not running. */
  const running = (pid: number) => isSameProcessAlive(pid, null);

  /** The step PID a script wrote (`echo $$ > …`), once it exists. */
  async function stepPid(file: string): Promise<number> {
    const pid = await waitFor(`${file} to be written`, async () => (existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) || undefined : undefined), 10_000, 50);
    stepPids.push(pid);
    return pid;
  }

  it('installing: a script whose `install` is running when the agent dies is reverted, back on the previous version', async () => {
    await publish('tool', '1.0.0', 'script', await buildArchive(dir, { install: OK, health: OK, VERSION: '1.0.0' }));
    await setVersion('tool', '1.0.0');
    await waitForPhase('tool', '1.0.0', ['done']);
    expect(current('tool')).toBe('1.0.0');

    const pidFile = join(agentDir, 'components', 'tool', '2.0.0', 'install.pid');
    // `exec`: the PID written is the sleeping step itself.
    const slowInstall = '#!/bin/sh\necho $$ > install.pid\nexec sleep 60\n';
    await publish('tool', '2.0.0', 'script', await buildArchive(dir, { install: slowInstall, health: OK, VERSION: '2.0.0' }));
    await setVersion('tool', '2.0.0');
    await waitForPhase('tool', '2.0.0', ['installing'], 30_000, 50);
    const installPid = await stepPid(pidFile);
    expect(await killAndRestart('tool')).toBe('installing');

    const { view, install } = await waitForPhase('tool', '2.0.0', ['done', 'reverted', 'failed']);
    expect(install.phase).toBe('reverted');
    expect(install.reason).toContain('agent restarted while installing 2.0.0');
    expect(current('tool')).toBe('1.0.0');
    expect(readFileSync(inCurrent('tool', 'VERSION'), 'utf8')).toBe('1.0.0');
    expect(view.components.tool).toBe('1.0.0');
    // The killed agent's `install` must not go on changing the node after the revert.
    expect(running(installPid)).toBe(false);
  });

  it('assessing: a script whose `health` is running when the agent dies is assessed again and ends done', async () => {
    const pidFile = join(agentDir, 'components', 'tool', '3.0.0', 'health.pid');
    // Slower than a poll, well within the 8 s health deadline: the re-run after the restart passes.
    const slowHealth = '#!/bin/sh\n[ -e health.pid ] || echo $$ > health.pid\nsleep 4\nexit 0\n';
    await publish('tool', '3.0.0', 'script', await buildArchive(dir, { install: OK, health: slowHealth, VERSION: '3.0.0' }));
    await setVersion('tool', '3.0.0');
    await waitForPhase('tool', '3.0.0', ['assessing'], 30_000, 50);
    const healthPid = await stepPid(pidFile);
    expect(await killAndRestart('tool')).toBe('assessing');

    const { view, install } = await waitForPhase('tool', '3.0.0', ['done', 'reverted', 'failed']);
    expect(install.phase).toBe('done');
    expect(current('tool')).toBe('3.0.0');
    expect(readFileSync(inCurrent('tool', 'VERSION'), 'utf8')).toBe('3.0.0');
    expect(view.components.tool).toBe('3.0.0');
    expect(running(healthPid)).toBe(false);
  });

  const partFile = join(agentDir, 'components', '.downloads', 'blob-2.0.0.tar.gz.part');
  const partSize = () => (existsSync(partFile) ? statSync(partFile).size : 0);

  it('downloading: a big binary artifact whose download is cut by the kill is fetched again and ends done', async () => {
    await publish('blob', '1.0.0', 'binary', await buildArchive(dir, { VERSION: '1.0.0', health: OK }));
    await setVersion('blob', '1.0.0');
    await waitForPhase('blob', '1.0.0', ['done']);
    expect(current('blob')).toBe('1.0.0');

    // Random bytes do not compress: the .tar.gz stays about BIG_MB, a few seconds through the proxy.
    const src = mkdtempSync(join(dir, 'big-'));
    const payload = randomBytes(BIG_MB * 1024 * 1024);
    writeFileSync(join(src, 'payload.bin'), payload);
    writeFileSync(join(src, 'VERSION'), '2.0.0');
    const archive = `${src}.tar.gz`;
    await createTar({ gzip: true, file: archive, cwd: src, portable: true }, ['payload.bin', 'VERSION']);
    rmSync(src, { recursive: true, force: true });
    expect(statSync(archive).size).toBeGreaterThan(BIG_MB * 1024 * 1024);
    await publish('blob', '2.0.0', 'binary', archive);

    await setVersion('blob', '2.0.0');
    await waitForPhase('blob', '2.0.0', ['downloading'], 30_000, 50);
    // Some bytes are on disk already: the kill lands mid-download, not before it began.
    await waitFor('part of the download on disk', async () => (partSize() > 1024 * 1024 ? true : undefined), 10_000, 50);
    expect(await killAndRestart('blob')).toBe('downloading');

    const { view, install } = await waitForPhase('blob', '2.0.0', ['done', 'reverted', 'failed'], 60_000);
    expect(install.phase).toBe('done');
    expect(current('blob')).toBe('2.0.0');
    expect(readFileSync(inCurrent('blob', 'VERSION'), 'utf8')).toBe('2.0.0');
    expect(statSync(inCurrent('blob', 'payload.bin')).size).toBe(payload.length);
    expect(readFileSync(inCurrent('blob', 'payload.bin')).equals(payload)).toBe(true);
    expect(view.components.blob).toBe('2.0.0');
    expect(existsSync(partFile)).toBe(false);
  }, 90_000);
});
