import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { agentInstaller, UNSUPERVISED_REASON } from '../../src/agent/components/agent-installer.js';
import { readJournal, writeJournal } from '../../src/agent/components/journal.js';
import { readSwitch, switchFile, writeSwitch } from '../../src/agent/supervisor/switch-record.js';
import { prepareAgentVersions } from '../../src/agent/supervisor/takeover.js';
import type { DesiredComponent } from '../../src/domain/protocol.js';
import { BlobServer, publish, reconciler, tempDir } from './artifact-fixtures.js';

// The `agent` installer across process boundaries, one reconciler per agent process: the old
// process hands over (switch.json + `current` + a restart request), the next one proves itself
// or reverts. "Restarting" throws, which leaves the journal as the exiting process left it.
// Each kill -9 is reproduced the way it leaves the disk.

const server = new BlobServer();
const dirs: string[] = [];
beforeAll(() => server.start());
afterAll(() => server.stop());
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

class Exited extends Error {}

/** One agent process on `dataDir`, started from version dir `running`. */
function agentProcess(dataDir: string, running: string, over: { acked?: boolean; supervised?: boolean } = {}) {
  const restarts: string[] = [];
  const installer = agentInstaller({
    dataDir,
    runningDir: running,
    runningVersion: running,
    deadlineMs: 2000,
    heartbeatAcknowledged: async () => over.acked ?? true,
    restart: (reason) => {
      restarts.push(reason);
      throw new Exited(reason);
    },
  });
  // Like the real agent, it reports the version it runs as `node-agent`.
  const builtIn = { 'node-agent': running };
  const { r } = reconciler(dataDir, server, over.supervised === false ? { builtIn } : { builtIn, agentInstaller: installer });
  return { r, restarts };
}

/** A supervised node on agent 1.0.0 (as the supervisor records it) and a published 2.0.0 bundle. */
function nodeOnV1() {
  const dir = tempDir('self-install');
  dirs.push(dir);
  const v1 = join(dir, 'v1.mjs');
  writeFileSync(v1, '// agent 1.0.0\n');
  const layout = prepareAgentVersions(dir, { bundle: v1, version: '1.0.0' }, pino({ level: 'silent' }));
  const bundle = join(dir, 'v2.mjs');
  writeFileSync(bundle, '// agent 2.0.0\n');
  const v2 = publish(server, bundle, { component: 'node-agent', version: '2.0.0', kind: 'agent' });
  return { dir, layout, v2 };
}

/** The old agent installs v2 and hands over. */
async function handedOver() {
  const node = nodeOnV1();
  const old = agentProcess(node.dir, '1.0.0');
  await old.r.reconcile({ 'node-agent': node.v2 });
  return { ...node, old };
}

const record = (dir: string) => readJournal(join(dir, 'components', 'journal.json')).installs['node-agent'];

describe('agent self-install (the agent side of the supervisor protocol)', () => {
  it('the old agent writes the bundle, journals assessing with a pending switch, switches current, asks for a restart', async () => {
    const { dir, layout, old } = await handedOver();
    expect(old.restarts).toEqual(['switching to agent 2.0.0']);
    expect(readFileSync(join(dir, 'components', 'node-agent', '2.0.0', 'drydock.mjs'), 'utf8')).toBe('// agent 2.0.0\n');
    expect(record(dir)).toMatchObject({ version: '2.0.0', previous_version: '1.0.0', phase: 'assessing' });
    expect(readSwitch(dir)).toMatchObject({ version: '2.0.0', previous: '1.0.0', state: 'pending' });
    expect(layout.currentVersion('node-agent')).toBe('2.0.0');
  });

  it('the new agent, its heartbeat acknowledged: proven, done, the switch record cleared', async () => {
    const { dir, layout, v2 } = await handedOver();
    const next = agentProcess(dir, '2.0.0');
    await next.r.reconcile();
    expect(next.r.reports()).toMatchObject([{ version: '2.0.0', phase: 'done' }]);
    expect(existsSync(switchFile(dir))).toBe(false);
    expect(layout.currentVersion('node-agent')).toBe('2.0.0');
    expect(next.restarts).toEqual([]);
    await next.r.reconcile({ 'node-agent': v2 });
    expect(next.r.reports()).toMatchObject([{ phase: 'done' }]);
  });

  it('the new agent, never acknowledged: reverts itself and hands back to the previous version', async () => {
    const { dir, layout } = await handedOver();
    const next = agentProcess(dir, '2.0.0', { acked: false });
    await next.r.reconcile();
    expect(next.r.reports()).toMatchObject([{ phase: 'reverted', reason: expect.stringContaining('was not proven healthy') }]);
    expect(layout.currentVersion('node-agent')).toBe('1.0.0');
    expect(next.restarts).toEqual(['returning to agent 1.0.0']);
  });

  it('killed after proving itself, before journaling done: the restarted new agent ends done', async () => {
    const { dir } = await handedOver();
    writeSwitch(dir, { ...readSwitch(dir)!, state: 'proven' });
    const next = agentProcess(dir, '2.0.0', { acked: false }); // no second proof needed
    await next.r.reconcile();
    expect(next.r.reports()).toMatchObject([{ phase: 'done' }]);
  });

  it('reverted by the supervisor: the previous agent reports reverted with the supervisor reason', async () => {
    const { dir, layout } = await handedOver();
    writeSwitch(dir, { ...readSwitch(dir)!, state: 'reverted', reason: 'agent 2.0.0 exited 3 times in a row' });
    layout.switchCurrent('node-agent', '1.0.0');
    const back = agentProcess(dir, '1.0.0');
    await back.r.reconcile();
    expect(back.r.reports()).toMatchObject([{ version: '2.0.0', previous_version: '1.0.0', phase: 'reverted', reason: 'agent 2.0.0 exited 3 times in a row' }]);
    expect(back.r.installedVersions()).toEqual({ 'node-agent': '1.0.0' });
    expect(back.restarts).toEqual([]);
    expect(existsSync(switchFile(dir))).toBe(false);
  });

  it('killed while installing (switch record written, journal still installing): reverted, never half', async () => {
    const { dir, layout, v2 } = nodeOnV1();
    writeSwitch(dir, { version: '2.0.0', previous: '1.0.0', state: 'pending' });
    const journal = readJournal(join(dir, 'components', 'journal.json'));
    writeJournal(join(dir, 'components', 'journal.json'), { ...journal, installs: { 'node-agent': installing(v2) } });
    const restarted = agentProcess(dir, '1.0.0');
    await restarted.r.reconcile();
    expect(restarted.r.reports()).toMatchObject([{ phase: 'reverted', reason: expect.stringContaining('restarted while installing 2.0.0') }]);
    expect(layout.currentVersion('node-agent')).toBe('1.0.0');
    expect(existsSync(switchFile(dir))).toBe(false);
  });

  it('killed after journaling assessing, before switching current: the restarted old agent hands over again', async () => {
    const { dir, layout } = await handedOver();
    layout.switchCurrent('node-agent', '1.0.0');
    const restarted = agentProcess(dir, '1.0.0');
    await restarted.r.reconcile();
    expect(restarted.restarts).toEqual(['switching to agent 2.0.0']);
    expect(layout.currentVersion('node-agent')).toBe('2.0.0');
    expect(record(dir)).toMatchObject({ phase: 'assessing', interrupted: 1 });
  });

  it('the new agent killed during its assessment three times in a row: reverted by the agent itself', async () => {
    const { dir, layout } = await handedOver();
    const journal = readJournal(join(dir, 'components', 'journal.json'));
    writeJournal(join(dir, 'components', 'journal.json'), { ...journal, installs: { 'node-agent': { ...journal.installs['node-agent']!, interrupted: 2 } } });
    const third = agentProcess(dir, '2.0.0');
    await third.r.reconcile();
    expect(third.r.reports()).toMatchObject([{ phase: 'reverted', reason: '2.0.0 crashed 3 times in a row during assessment' }]);
    expect(layout.currentVersion('node-agent')).toBe('1.0.0');
    expect(third.restarts).toEqual(['returning to agent 1.0.0']);
  });

  it('an unsupervised agent refuses agent artifacts, and says how to run it', async () => {
    const { dir, layout, v2 } = nodeOnV1();
    const alone = agentProcess(dir, '1.0.0', { supervised: false });
    await alone.r.reconcile({ 'node-agent': v2 });
    expect(alone.r.reports()).toMatchObject([{ phase: 'failed', reason: UNSUPERVISED_REASON }]);
    expect(layout.currentVersion('node-agent')).toBe('1.0.0');
    expect(existsSync(join(dir, 'components', 'node-agent', '2.0.0'))).toBe(false);
  });
});

function installing(v2: DesiredComponent) {
  return {
    component: 'node-agent',
    version: '2.0.0',
    previous_version: '1.0.0',
    kind: 'agent' as const,
    artifact_id: v2.artifact_id,
    sha256: v2.sha256,
    rollback: false,
    phase: 'installing' as const,
    interrupted: 0,
    updated_at: new Date().toISOString(),
  };
}
