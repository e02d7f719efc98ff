// The agent's operator replica in a blue-green rollout (DESIGN.md §11), with real operator
// processes on the PostgreSQL server: a new version starts beside the running one on the second
// address, the old one keeps running; going back makes the old process current again (the same
// pid, nothing restarted); retiring stops it; a restarted agent adopts both processes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installBootstrapOperator } from '../../src/agent/components/operator-bootstrap.js';
import { NO_ALT_LISTEN_REASON, OPERATOR_COMPONENT, OperatorReplica } from '../../src/agent/components/operator-replica.js';
import { ComponentLayout } from '../../src/agent/components/layout.js';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { packOperatorArtifact } from '../../src/control-plane/operator-artifact.js';
import { stampBundle } from '../../src/demo/stamp.js';
import { isAlive, waitFor } from '../../src/demo/local-fleet.js';
import { BUNDLE } from '../support/processes.js';
import { createServerDb, type ServerDb } from '../support/server-db.js';

describe('the operator replica, blue-green', () => {
  let db: ServerDb;
  let dir: string;
  let layout: ComponentLayout;
  let primary: string;
  let alt: string;
  const started = new Set<number>();

  const replica = (over: { altListen?: string | undefined } = {}) =>
    new OperatorReplica({
      layout,
      listen: primary,
      altListen: 'altListen' in over ? over.altListen : alt,
      region: 'eu-west',
      hostname: 'cp-1',
      nodeEnvFile: join(dir, 'node.env'),
      extraArgs: ['--allow-unsigned', '--heartbeat-interval=1s'],
      stateFile: join(dir, 'operator-replica.json'),
      stopGraceMs: 15_000,
      shutdownDelayMs: 100,
      log: pino({ level: 'silent' }),
    });

  const proven = async (r: OperatorReplica, version: string) => {
    for (const pid of r.pids) started.add(pid);
    expect(await r.waitProven(version, Date.now() + 60_000, () => false)).toBeUndefined();
  };
  const versionAt = async (listen: string) => {
    const response = await fetch(`http://${listen}/health`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
    return response?.ok ? ((await response.json()) as { version: string }).version : undefined;
  };

  beforeAll(async () => {
    db = await createServerDb('drydock_bg');
    dir = mkdtempSync(join(tmpdir(), 'drydock-operator-bg-'));
    writeFileSync(join(dir, 'node.env'), `DATABASE_URL=${db.url}\n`);
    layout = new ComponentLayout(join(dir, 'components'));
    for (const version of ['1.0.0', '2.0.0']) {
      const bundle = join(dir, `drydock-${version}.mjs`);
      stampBundle(BUNDLE, bundle, version);
      await packOperatorArtifact(bundle, join(dir, `operator-${version}.tar.gz`), `# operator ${version}\n`);
    }
    await installBootstrapOperator(layout, join(dir, 'operator-1.0.0.tar.gz'));
    await layout.unpack(OPERATOR_COMPONENT, '2.0.0', join(dir, 'operator-2.0.0.tar.gz'));
    primary = `127.0.0.1:${await freePort()}`;
    alt = `127.0.0.1:${await freePort()}`;
  }, 120_000);

  afterAll(async () => {
    for (const pid of started) if (isAlive(pid)) process.kill(pid, 'SIGTERM');
    await waitFor('operator replicas to stop', async () => ([...started].some(isAlive) ? undefined : true), 30_000, 200).catch(() => {
      for (const pid of started) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    });
    rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  }, 60_000);

  it('starts the new version beside the old one, goes back to the same old process, then retires the old one', async () => {
    const r = replica();
    await r.ensureRunning();
    await proven(r, '1.0.0');
    const oldPid = r.pid as number;

    await r.startBeside('2.0.0');
    await proven(r, '2.0.0');
    const newPid = r.pid as number;
    expect({ running: r.runningVersion, previous: r.previousVersion, url: r.url, current: layout.currentVersion(OPERATOR_COMPONENT) }).toEqual({
      running: '2.0.0',
      previous: '1.0.0',
      url: `http://${alt}`,
      current: '2.0.0',
    });
    expect({ first: await versionAt(primary), second: await versionAt(alt) }).toEqual({ first: '1.0.0', second: '2.0.0' });

    // A restarted agent adopts both processes from the state file.
    const adopted = replica();
    expect({ running: adopted.runningVersion, previous: adopted.previousVersion, pids: adopted.pids.sort() }).toEqual({
      running: '2.0.0',
      previous: '1.0.0',
      pids: [oldPid, newPid].sort(),
    });
    // Not knowing the desired state yet, keeping the previous, or asking for it back stops nothing.
    await adopted.supervise(undefined);
    await adopted.supervise({ version: '2.0.0', keepPrevious: true });
    await adopted.supervise({ version: '1.0.0', keepPrevious: false });
    expect(adopted.previousVersion).toBe('1.0.0');

    // Back: the old process is current again, untouched; the new one stopped.
    await adopted.swapBack();
    expect({ running: adopted.runningVersion, pid: adopted.pid, previous: adopted.previousVersion, url: adopted.url, current: layout.currentVersion(OPERATOR_COMPONENT) }).toEqual({
      running: '1.0.0',
      pid: oldPid,
      previous: undefined,
      url: `http://${primary}`,
      current: '1.0.0',
    });
    // Stopped (the replica waited for it); the pid goes once this process has reaped its child.
    await waitFor('the new replica reaped', async () => (isAlive(newPid) ? undefined : true), 10_000);
    expect(await versionAt(alt)).toBeUndefined();

    // Forward again, then retired: only the new version runs, on the second address.
    await adopted.startBeside('2.0.0');
    await proven(adopted, '2.0.0');
    await adopted.supervise({ version: '2.0.0', keepPrevious: false });
    expect({ running: adopted.runningVersion, previous: adopted.previousVersion, url: adopted.url }).toEqual({ running: '2.0.0', previous: undefined, url: `http://${alt}` });
    await waitFor('the old replica reaped', async () => (isAlive(oldPid) ? undefined : true), 10_000);
    expect(await versionAt(primary)).toBeUndefined();

    // The next blue-green starts on the first address again (the two swap roles).
    await adopted.startBeside('1.0.0');
    await proven(adopted, '1.0.0');
    expect({ url: adopted.url, previous: adopted.previousVersion }).toEqual({ url: `http://${primary}`, previous: '2.0.0' });
    await adopted.supervise({ version: '1.0.0', keepPrevious: false });
    expect(adopted.pids).toHaveLength(1);
  }, 240_000);

  it('an agent with one address refuses a blue-green start and leaves its replica as it is', async () => {
    const r = replica({ altListen: undefined });
    const before = { running: r.runningVersion, pid: r.pid };
    await expect(r.startBeside('2.0.0')).rejects.toThrow(NO_ALT_LISTEN_REASON);
    expect({ running: r.runningVersion, pid: r.pid }).toEqual(before);
    expect(before.running).toBe('1.0.0');
  }, 60_000);
});
