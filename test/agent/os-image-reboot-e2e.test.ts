import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { isSameProcessAlive } from '../../src/agent/drivers/process-driver.js';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { BootSlotsReport, InstallReport } from '../../src/domain/protocol.js';
import { signArtifact } from '../../src/signing.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { buildOsImage, installRecord, slotsOnDisk as slotsOf, supervisedAgentPid } from '../support/os-image-fleet.js';
import { simulatedReboots } from '../../src/demo/simulated-reboots.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';
import { publisher, sha256File, tempDir } from './artifact-fixtures.js';

// Reboot-class components with real processes (DESIGN.md §12): `drydock supervisor` runs the
// agent with `--reboot-command exit` (a reboot is the agent exiting with EXIT_REBOOT and its
// supervisor starting it again). OS images are signed .tar.gz files holding `version` and
// `required.d/` boot checks, published to the real operator. 1.0.0 → 2.0.0 is pre-staged (no
// reboot), then installed (one reboot, checks pass, slot blessed); 3.0.0's checks fail: tried 3
// times, then the node boots 2.0.0's slot again and reports `reverted`, with the operator
// stopped for all of the failing boots.

const HOST = 'us-east-os-1';

type NodeDetail = NodeView & { installs: InstallReport[]; slots: BootSlotsReport | null };

describe('os-image A/B slots under the supervisor', () => {
  const dir = tempDir('os-image');
  const agentDir = join(dir, 'agent');
  const checksLog = join(dir, 'checks.log');
  const gate = join(dir, 'gate');
  const agentPids = new Set<number>();
  let fleet: LocalFleet;
  let client: ApiClient;
  let node: NodeView;
  let operatorListen: string;

  beforeAll(async () => {
    writeFileSync(join(dir, 'drydock-signing.pub'), publisher.publicPem);
    fleet = await startTestFleet('os-image');
    // The operator comes back on the same address (and data dir) after it was stopped.
    operatorListen = fleet.operatorUrl.replace(/^http:\/\//, '');
    client = fleet.client();
    fleet.spawn('supervisor', [
      'supervisor', '--data-dir', agentDir, '--deadline', '30s', '--',
      'agent', '--operator', fleet.operatorUrl, '--hostname', HOST, '--region', 'us-east', '--listen', '127.0.0.1:0',
      '--heartbeat-interval', '1s', '--trusted-key', join(dir, 'drydock-signing.pub'),
      '--reboot-command', 'exit', '--boot-tries', '3', '--component-health-deadline', '20s',
    ]);
    [node] = (await fleet.waitForNodes(1)) as [NodeView];
  });

  afterAll(async () => {
    noteAgentPid();
    writeFileSync(gate, '');
    // Every simulated reboot restarted the instance under a new pid: once no agent runs any more,
    // the last ones are in the agent's state file.
    await fleet?.stopProcess('supervisor');
    try {
      const state = JSON.parse(readFileSync(join(agentDir, 'agent-state.json'), 'utf8')) as { processes?: Record<string, { pid: number }> };
      for (const proc of Object.values(state.processes ?? {})) fleet.instancePids.add(proc.pid);
    } catch {
      // No state file: no instance was ever started.
    }
    await fleet?.stop();
    for (const pid of [...agentPids].filter(isAlive)) process.kill(pid, 'SIGKILL');
    const left = [...(fleet?.spawnedPids ?? []), ...agentPids, ...(fleet?.instancePids ?? [])].filter((pid) => isSameProcessAlive(pid, null));
    rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  function noteAgentPid(): number | undefined {
    const pid = supervisedAgentPid(agentDir);
    if (pid) agentPids.add(pid);
    return pid;
  }

  /** Simulated reboots so far: the supervisor logs each agent exit with its code (76: EXIT_REBOOT). */
  const reboots = () => simulatedReboots(fleet.processes.get('supervisor')!.log);

  const checkRuns = (version: string) => (existsSync(checksLog) ? readFileSync(checksLog, 'utf8').split('\n').filter((l) => l === `check ${version}`).length : 0);

  /** A real OS image: a .tar.gz with `version` and one boot check that records its run. */
  async function buildImage(version: string, check: 'pass' | 'fail-after-gate' | 'pass-after-gate'): Promise<string> {
    const body =
      check === 'pass'
        ? `echo "check $DRYDOCK_VERSION" >> '${checksLog}'\nexit 0\n`
        : check === 'pass-after-gate'
          ? `echo "check $DRYDOCK_VERSION" >> '${checksLog}'\nwhile [ ! -f '${gate}-${version}' ]; do sleep 0.1; done\nexit 0\n`
          : `echo "check $DRYDOCK_VERSION" >> '${checksLog}'\nwhile [ ! -f '${gate}' ]; do sleep 0.1; done\necho "kernel panic (simulated)" >&2\nexit 1\n`;
    return buildOsImage(dir, version, `#!/bin/sh\n${body}`);
  }

  async function publishImage(version: string, file: string): Promise<{ kind: string; reboot: boolean }> {
    const sha256 = sha256File(file);
    const signature = signArtifact(publisher.privatePem, { component: 'os', version, kind: 'os-image', sha256 });
    const query = new URLSearchParams({ component: 'os', version, kind: 'os-image', signature, public_key: publisher.publicPem });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(file) });
    const text = await response.text();
    expect(response.status, text).toBe(201);
    return JSON.parse(text) as { kind: string; reboot: boolean };
  }

  async function installOf(version: string, phase: InstallReport['phase'], timeoutMs: number) {
    return waitFor(
      `os ${version} ${phase} on ${HOST}`,
      async () => {
        noteAgentPid();
        const view = await client.get<NodeDetail>(`/api/v1/nodes/${node.id}`);
        const install = view.installs.find((i) => i.component === 'os' && i.version === version);
        return install?.phase === phase ? { view, install } : undefined;
      },
      timeoutMs,
    );
  }

  const slotsOnDisk = () => slotsOf(agentDir);
  const journalOf = () => installRecord(agentDir, 'os');

  it('publishes os images with reboot on, and refuses reboot for any other kind or without it for an os image', async () => {
    const artifact = await publishImage('1.0.0', await buildImage('1.0.0', 'pass'));
    expect(artifact).toMatchObject({ kind: 'os-image', reboot: true });
    const query = new URLSearchParams({ component: 'tool', version: '1.0.0', kind: 'binary', reboot: 'true' });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'x' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('REBOOT_NOT_OS_IMAGE');
    const noReboot = new URLSearchParams({ component: 'os', version: '0.9.0', kind: 'os-image', reboot: 'false' });
    const refused = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${noReboot}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: 'x' });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('OS_IMAGE_ALWAYS_REBOOTS');
  });

  it('installs 1.0.0 into slot b with one reboot (node-local instances stop and start again); the heartbeat reports the slots', async () => {
    // An undrained node (no rollout here): the simulated reboot ends its instance like a real one would.
    await client.post('/api/v1/deployments', { name: 'svc', replicas: 1, workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' } });
    const healthyPid = (not?: number) =>
      waitFor(`a healthy instance${not ? ` other than pid ${not}` : ''}`, async () => {
        const [instance] = await client.get<InstanceView[]>(`/api/v1/nodes/${node.id}/instances`);
        return instance?.healthy && instance.pid && instance.pid !== not ? instance.pid : undefined;
      }, 30_000);
    const instanceBefore = await healthyPid();
    await fleet.recordInstancePids();
    const before = noteAgentPid();
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/os`, { version: '1.0.0' });
    const { view } = await installOf('1.0.0', 'done', 45_000);
    expect(reboots()).toBe(1);
    expect(checkRuns('1.0.0')).toBe(1);
    expect(noteAgentPid()).not.toBe(before);
    expect(view.components.os).toBe('1.0.0');
    expect(isSameProcessAlive(instanceBefore, null)).toBe(false); // ended (a zombie at most, nobody reaps in a container)
    // Started again by the agent that came back (the desired state still wants it here).
    expect(isSameProcessAlive(await healthyPid(instanceBefore), null)).toBe(true);
    await fleet.recordInstancePids();
    const shown = await waitFor('slots in the node view', async () => {
      const v = await client.get<NodeDetail>(`/api/v1/nodes/${node.id}`);
      return v.slots?.active === 'b' ? v : undefined;
    }, 15_000);
    expect(shown.slots).toEqual({ a: { version: null }, b: { version: '1.0.0' }, active: 'b', next: 'b', tries_left: 0 });
  });

  it('pre-stages 2.0.0 into the inactive slot without a reboot, then installs it with exactly one reboot', async () => {
    await publishImage('2.0.0', await buildImage('2.0.0', 'pass'));
    const pid = noteAgentPid();
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/os`, { version: '2.0.0', prestage: true });
    await installOf('2.0.0', 'staged', 30_000);
    const staged = await waitFor('staged slot in the node view', async () => {
      const view = await client.get<NodeDetail>(`/api/v1/nodes/${node.id}`);
      return view.slots?.a.version === '2.0.0' ? view : undefined;
    }, 15_000);
    expect(staged.slots).toEqual({ a: { version: '2.0.0' }, b: { version: '1.0.0' }, active: 'b', next: 'b', tries_left: 0 });
    expect(staged.components.os).toBe('1.0.0');
    expect(noteAgentPid()).toBe(pid);
    expect(reboots()).toBe(1);
    expect(checkRuns('2.0.0')).toBe(0);

    await client.request('PUT', `/api/v1/nodes/${node.id}/components/os`, { version: '2.0.0' });
    const { view } = await installOf('2.0.0', 'done', 45_000);
    expect(reboots()).toBe(2);
    expect(checkRuns('2.0.0')).toBe(1);
    expect(noteAgentPid()).not.toBe(pid);
    expect(view.components.os).toBe('2.0.0');
    expect(slotsOnDisk().slots.a).toMatchObject({ version: '2.0.0', blessed: true });
    const shown = await waitFor('blessed slot in the node view', async () => {
      const v = await client.get<NodeDetail>(`/api/v1/nodes/${node.id}`);
      return v.slots?.active === 'a' ? v : undefined;
    }, 15_000);
    expect(shown.slots).toEqual({ a: { version: '2.0.0' }, b: { version: '1.0.0' }, active: 'a', next: 'a', tries_left: 0 });
    // `drydock node show` prints them.
    const out = execFileSync(process.execPath, [BUNDLE, 'node', 'show', HOST, '--operator', fleet.operatorUrl], { encoding: 'utf8' });
    expect(out).toContain('A/B SLOTS\na  2.0.0  active\nb  1.0.0\n');
  });

  it('an image whose boot checks fail is tried 3 times, then the node boots the previous slot and reports reverted, all with the operator stopped', async () => {
    await publishImage('3.0.0', await buildImage('3.0.0', 'fail-after-gate'));
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/os`, { version: '3.0.0' });
    // The first boot of 3.0.0 is checking (the check waits at its gate): the operator goes away now.
    await waitFor('the first boot check of 3.0.0', async () => (checkRuns('3.0.0') === 1 ? true : undefined), 45_000);
    const rebootsBefore = reboots();
    await fleet.stopProcess('operator');
    writeFileSync(gate, '');
    // Everything from here happens on the node alone: 2 more tries, then the fallback boot.
    const settled = await waitFor('the node back on slot a by itself', async () => {
      const record = journalOf();
      return record?.version === '3.0.0' && record.phase === 'reverted' ? record : undefined;
    }, 60_000);
    expect(checkRuns('3.0.0')).toBe(3);
    expect(reboots() - rebootsBefore).toBe(3); // after try 1, after try 2, and the fallback after try 3
    expect(settled.reason).toMatch(/^boot checks of 3\.0\.0 failed on every try \(last: required\.d\/10-boot failed \(exit code 1\): kernel panic \(simulated\)\); booted slot a \(2\.0\.0\) again$/);
    const slots = slotsOnDisk();
    expect(slots).toMatchObject({ active: 'a', next: 'a', tries_left: 0, fallback: null });
    expect(slots.slots.a).toMatchObject({ version: '2.0.0', blessed: true });
    expect(slots.slots.b).toMatchObject({ version: '3.0.0', blessed: false });

    // The operator comes back and learns it from the next heartbeat; the node stays on 2.0.0.
    await fleet.startOperator(operatorListen);
    const { view, install } = await installOf('3.0.0', 'reverted', 30_000);
    expect(install.reason).toBe(settled.reason);
    expect(view.components.os).toBe('2.0.0');
    expect(view.slots).toEqual({ a: { version: '2.0.0' }, b: { version: '3.0.0' }, active: 'a', next: 'a', tries_left: 0 });
    expect(checkRuns('3.0.0')).toBe(3); // not retried: the same request was reverted
  });

  it('a kill -9 of the agent during a boot check is not a boot: the check runs again on the same try and blesses the slot', async () => {
    await publishImage('4.0.0', await buildImage('4.0.0', 'pass-after-gate'));
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/os`, { version: '4.0.0' });
    await waitFor('the first boot check of 4.0.0', async () => (checkRuns('4.0.0') === 1 ? true : undefined), 45_000);
    const rebootsBefore = reboots();
    const checking = noteAgentPid() as number;
    const triesBefore = slotsOnDisk().tries_left;
    expect(slotsOnDisk()).toMatchObject({ active: 'b', next: 'b', reboot: null });
    process.kill(checking, 'SIGKILL');
    await waitFor('the next agent to run the check again', async () => (checkRuns('4.0.0') === 2 ? true : undefined), 30_000);
    expect(noteAgentPid()).not.toBe(checking);
    expect(slotsOnDisk().tries_left).toBe(triesBefore);
    writeFileSync(`${gate}-4.0.0`, '');
    const { view } = await installOf('4.0.0', 'done', 30_000);
    expect(reboots()).toBe(rebootsBefore); // a crash, not a reboot
    expect(view.components.os).toBe('4.0.0');
    expect(slotsOnDisk()).toMatchObject({ active: 'b', next: 'b', tries_left: 0 });
    expect(slotsOnDisk().slots.b).toMatchObject({ version: '4.0.0', blessed: true });
    expect(slotsOnDisk().slots.a).toMatchObject({ version: '2.0.0', blessed: true });
  });
});
