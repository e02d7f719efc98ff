import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiCallError, type ApiClient } from '../../src/api-client.js';
import { isSameProcessAlive } from '../../src/agent/drivers/process-driver.js';
import { type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { BootSlotsReport, InstallReport } from '../../src/domain/protocol.js';
import type { EventRow } from '../../src/store/events.js';
import type { HookRunView } from '../../src/store/hook-runs.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { buildArchive, publisher, tempDir } from '../agent/artifact-fixtures.js';
import { buildOsImage, installRecord, PASSING_CHECK, publishSigned, slotsOnDisk, supervisedAgentPid } from '../support/os-image-fleet.js';
import { simulatedReboots } from '../../src/demo/simulated-reboots.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

// Issue 12's "done when", with real processes: a real operator and six nodes, each a real
// `drydock supervisor` running the agent with `--reboot-command exit` (a reboot is the agent
// exiting with code 76 and its supervisor starting it again from the new slot).
// - preflight: volume-last-replica and backup-in-progress block a plan (and the create) while a
//   storage or backup system reports through the API, and pass when nothing is reported;
// - `targets: [os-image (reboot), binary]` upgrades all six nodes with one drain and one reboot
//   each, preNode and postNode once each in order, even with an agent killed -9 mid-hook;
// - an image whose boot checks fail falls back to the previous slot on every node that got it
//   while the operator is stopped; back up, the operator sees `reverted` and the breaker trips.

const HOSTS: readonly string[] = ['osf-1', 'osf-2', 'osf-3', 'osf-4', 'osf-5', 'osf-6'];
const VICTIM = 'osf-3';
const ENDED = ['completed', 'failed', 'awaiting_decision', 'aborted', 'rolled_back'];

type NodeDetail = NodeView & { installs: InstallReport[]; slots: BootSlotsReport | null };
interface RolloutDetail {
  id: string;
  status: string;
  tasks: { node_id: string; hostname: string; state: string; last_error: string | null; hooks: HookRunView[] }[];
  hooks: HookRunView[];
}
interface Check {
  id: string;
  status: string;
  objects?: string[];
}

describe('OS image fleet: two components in one drain, hooks once, fallback without the operator, preflight fed by reports', () => {
  const dir = tempDir('os-image-fleet');
  const hooksLog = join(dir, 'hooks.log');
  const checksLog = join(dir, 'checks.log');
  const gate = join(dir, 'gate');
  const agentPids = new Set<number>();
  let fleet: LocalFleet;
  let api: ApiClient;
  let listen: string;
  const operatorArgs = ['--heartbeat-grace', '10s', '--heartbeat-interval', '1s'];

  const nodes = () => api.get<NodeView[]>('/api/v1/nodes');
  const node = (id: string) => api.get<NodeDetail>(`/api/v1/nodes/${id}`);
  const dataDir = (host: string) => join(dir, 'agents', host);
  const reboots = (host: string) => simulatedReboots(fleet.processes.get(host)!.log);
  const rollout = (id: string) => api.get<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const lastEventId = async () => Number((await api.get<EventRow[]>('/api/v1/events?order=desc&limit=1'))[0]?.id ?? 0);
  const eventsAfter = (after: number) => api.get<EventRow[]>(`/api/v1/events?after=${after}&limit=5000`);
  const waitEnd = (id: string, timeoutMs: number) =>
    waitFor(
      `rollout ${id} to end`,
      async () => {
        const r = await rollout(id);
        return ENDED.includes(r.status) ? r : undefined;
      },
      timeoutMs,
    );

  function noteAgentPids(): void {
    for (const host of HOSTS) {
      const pid = supervisedAgentPid(dataDir(host));
      if (pid) agentPids.add(pid);
    }
  }

  const readLines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []);

  const spec = (name: string, targets: { component: string; version: string }[], extra: Record<string, unknown> = {}, strategy: Record<string, unknown> = {}) => ({
    name,
    targets,
    selector: { regions: ['us-east'] },
    strategy: { batch: { size: 2 }, drain: { mode: 'migrate', timeout: '1m' }, health: { minHealthyTime: '1s', timeout: '2m' }, ...strategy },
    ...extra,
  });

  beforeAll(async () => {
    writeFileSync(join(dir, 'drydock-signing.pub'), publisher.publicPem);
    fleet = await startTestFleet('os-image-fleet', operatorArgs);
    listen = fleet.operatorUrl.replace(/^http:\/\//, '');
    api = fleet.client();
    for (const host of HOSTS) {
      fleet.startSupervisedAgent(
        host,
        'us-east',
        BUNDLE,
        ['--heartbeat-interval', '1s', '--max-instances', '4', '--trusted-key', join(dir, 'drydock-signing.pub'), '--boot-tries', '3', '--component-health-deadline', '30s'],
        '30s',
        dataDir(host),
      );
    }
    await fleet.waitForNodes(HOSTS.length, 90_000);
    // 3.0.0's boot check records its run (by node id) and waits at a gate before it fails, so
    // the test can stop the operator while the first boots of it are under way.
    const broken = `#!/bin/sh\necho "$DRYDOCK_NODE_ID" >> '${checksLog}'\nwhile [ ! -f '${gate}' ]; do sleep 0.1; done\necho "kernel panic (simulated)" >&2\nexit 1\n`;
    for (const [version, check] of [['1.0.0', PASSING_CHECK], ['2.0.0', PASSING_CHECK], ['3.0.0', broken]] as const) {
      await publishSigned(fleet.operatorUrl, api, 'os', version, 'os-image', await buildOsImage(dir, version, check));
    }
    for (const v of ['1.0.0', '2.0.0']) await publishSigned(fleet.operatorUrl, api, 'web', v, 'binary', await buildArchive(dir, { 'web-server': `web ${v}`, health: PASSING_CHECK }));
    for (const n of await nodes()) {
      await api.put(`/api/v1/nodes/${n.id}/components/os`, { version: '1.0.0' });
      await api.put(`/api/v1/nodes/${n.id}/components/web`, { version: '1.0.0' });
    }
    await waitFor(
      'every node on os and web 1.0.0',
      async () => ((await nodes()).every((n) => n.components.os === '1.0.0' && n.components.web === '1.0.0' && n.status === 'ready') ? true : undefined),
      180_000,
    );
    noteAgentPids();
  }, 300_000);

  afterAll(async () => {
    noteAgentPids();
    writeFileSync(gate, '');
    // Simulated reboots restart a node's instances under new pids: the last ones are in the agents' state files.
    await fleet?.recordInstancePids();
    await Promise.all(HOSTS.map((h) => fleet?.stopProcess(h)));
    for (const host of HOSTS) {
      try {
        const state = JSON.parse(readFileSync(join(dataDir(host), 'agent-state.json'), 'utf8')) as { processes?: Record<string, { pid: number }> };
        for (const proc of Object.values(state.processes ?? {})) fleet.instancePids.add(proc.pid);
      } catch {
        // No instance was ever started there.
      }
    }
    await fleet?.stop();
    await waitFor('agents to exit', async () => ([...agentPids].some((pid) => isSameProcessAlive(pid, null)) ? undefined : true), 20_000).catch(() => {
      for (const pid of agentPids) if (isSameProcessAlive(pid, null)) process.kill(pid, 'SIGKILL');
    });
    const left = [...(fleet?.spawnedPids ?? []), ...agentPids, ...(fleet?.instancePids ?? [])].filter((pid) => isSameProcessAlive(pid, null));
    rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  }, 90_000);

  it('volume-last-replica and backup-in-progress block a plan while fed by the API, and pass when not', async () => {
    await api.post('/api/v1/deployments', { name: 'db', replicas: 2, workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' } });
    const [one, two] = await waitFor(
      'both db instances healthy',
      async () => {
        const list = await api.get<InstanceView[]>('/api/v1/instances?deployment=db');
        return list.length === 2 && list.every((i) => i.healthy) ? list : undefined;
      },
      60_000,
    ) as [InstanceView, InstanceView];
    await fleet.recordInstancePids();
    const forward = spec('preflight', [
      { component: 'os', version: '2.0.0' },
      { component: 'web', version: '2.0.0' },
    ]);
    const checks = async () => {
      const { preflight } = await api.post<{ preflight: { checks: Check[] } }>('/api/v1/rollouts/plan', forward);
      return Object.fromEntries(preflight.checks.filter((c) => ['volume-last-replica', 'backup-in-progress'].includes(c.id)).map((c) => [c.id, [c.status, ...(c.objects ?? [])]]));
    };
    const refusal = () => api.post('/api/v1/rollouts', forward).then(() => undefined, (e: unknown) => e as ApiCallError);

    expect(await checks()).toEqual({ 'volume-last-replica': ['pass'], 'backup-in-progress': ['pass'] });

    await api.put(`/api/v1/instances/${one.id}/volume`, { replicas: 3, healthy_replicas: 1 });
    expect(await checks()).toEqual({ 'volume-last-replica': ['fail', one.id], 'backup-in-progress': ['pass'] });
    const byVolume = await refusal();
    expect([byVolume?.status, byVolume?.code]).toEqual([409, 'PREFLIGHT_FAILED']);
    await api.put(`/api/v1/instances/${one.id}/volume`, { replicas: 3, healthy_replicas: 2 });
    expect(await checks()).toEqual({ 'volume-last-replica': ['pass'], 'backup-in-progress': ['pass'] });

    await api.put(`/api/v1/instances/${two.id}/activity`, { activity: 'backup', expires_in: '10m' });
    expect(await checks()).toEqual({ 'volume-last-replica': ['pass'], 'backup-in-progress': ['fail', two.id] });
    const byBackup = await refusal();
    expect([byBackup?.status, byBackup?.code]).toEqual([409, 'PREFLIGHT_FAILED']);
    await api.request('DELETE', `/api/v1/instances/${two.id}/activity`);
    await api.request('DELETE', `/api/v1/instances/${one.id}/volume`);
    expect(await checks()).toEqual({ 'volume-last-replica': ['pass'], 'backup-in-progress': ['pass'] });
    // Nothing was created by the refused attempts.
    expect((await api.get<{ name: string }[]>('/api/v1/rollouts')).filter((r) => r.name === 'preflight')).toEqual([]);

    // The rollouts below drain empty nodes.
    await api.request('DELETE', '/api/v1/deployments/db');
    const pids = [one.pid, two.pid].filter((pid): pid is number => typeof pid === 'number');
    expect(pids).toHaveLength(2);
    await waitFor('the db instance processes to end', async () => (pids.some((pid) => isSameProcessAlive(pid, null)) ? undefined : true), 60_000);
    // Their rows go once their agents report them stopped (the next heartbeat).
    await waitFor('the db instance rows to go', async () => ((await api.get<InstanceView[]>('/api/v1/instances')).length === 0 ? true : undefined), 30_000);
  }, 180_000);

  it('os-image then web on six nodes: one drain and one reboot per node, preNode and postNode once each in order, even with an agent killed -9 mid-hook', async () => {
    const before = new Map(HOSTS.map((h) => [h, reboots(h)]));
    const since = await lastEventId();
    // preNode takes 2 s, so the test can kill the victim's agent while it runs.
    const preNode = ['/bin/sh', '-c', `echo "preNode start $DRYDOCK_NODE" >> '${hooksLog}'; sleep 2; echo "preNode end $DRYDOCK_NODE" >> '${hooksLog}'`];
    const postNode = ['/bin/sh', '-c', `echo "postNode $DRYDOCK_NODE" >> '${hooksLog}'`];
    const created = await api.post<RolloutDetail>(
      '/api/v1/rollouts',
      spec(
        'os-and-web',
        [
          { component: 'os', version: '2.0.0' },
          { component: 'web', version: '2.0.0' },
        ],
        { hooks: { preNode: [{ run: preNode, timeout: '30s' }], postNode: [{ run: postNode, timeout: '30s' }] } },
      ),
    );

    await waitFor('the preNode hook to start on the victim', async () => (readLines(hooksLog).includes(`preNode start ${VICTIM}`) ? true : undefined), 180_000, 50);
    const killed = supervisedAgentPid(dataDir(VICTIM)) as number;
    agentPids.add(killed);
    expect(readLines(hooksLog)).not.toContain(`preNode end ${VICTIM}`);
    process.kill(killed, 'SIGKILL');
    await waitFor('the supervisor to start another agent', async () => {
      const pid = supervisedAgentPid(dataDir(VICTIM));
      return pid && pid !== killed ? pid : undefined;
    }, 30_000);
    noteAgentPids();

    const done = await waitEnd(created.id, 420_000);
    noteAgentPids();
    expect({ status: done.status, open: done.tasks.filter((t) => t.state !== 'done') }).toEqual({ status: 'completed', open: [] });
    const all = await nodes();
    expect(all.map((n) => [n.hostname, n.components.os, n.components.web, n.cordoned, n.status]).sort()).toEqual(HOSTS.map((h) => [h, '2.0.0', '2.0.0', false, 'ready']));

    // Every hook ran exactly once per node, in order, the victim's too (the restarted agent
    // adopted the run from its journal instead of starting it again).
    const lines = readLines(hooksLog);
    for (const host of HOSTS) {
      expect({ host, lines: lines.filter((l) => l.endsWith(` ${host}`)) }).toEqual({ host, lines: [`preNode start ${host}`, `preNode end ${host}`, `postNode ${host}`] });
    }
    const victimLog = readFileSync(fleet.processes.get(VICTIM)!.log, 'utf8');
    expect(victimLog).toContain('adopting a hook started before the agent restarted');
    expect(done.hooks.map((h) => [h.point, h.status, h.attempt]).sort()).toEqual([...HOSTS.map(() => ['postNode', 'succeeded', 1]), ...HOSTS.map(() => ['preNode', 'succeeded', 1])]);

    // One drain per node (started and finished), one install of each component, in one story.
    const hostOf = new Map(all.map((n) => [n.id, n.hostname]));
    const events = await eventsAfter(since);
    for (const host of HOSTS) {
      const d = (e: EventRow) => e.data as { component?: string; version?: string; prestage?: boolean };
      const story = events
        .filter((e) => e.node_id && hostOf.get(e.node_id) === host)
        .filter((e) => ['node.drain_started', 'node.drained', 'node.install_completed', 'node.reverted', 'node.install_failed', 'rollout.node_completed'].includes(e.kind) || (e.kind.startsWith('rollout.hook_') && e.kind !== 'rollout.hook_started'))
        .map((e) => [e.kind, d(e).component, d(e).version, (e.data as { point?: string }).point].filter(Boolean).join(' '));
      expect({ host, story }).toEqual({
        host,
        story: [
          'node.drain_started',
          'node.drained',
          'rollout.hook_completed preNode',
          'node.install_completed os 2.0.0',
          'node.install_completed web 2.0.0',
          'rollout.hook_completed postNode',
          'rollout.node_completed',
        ],
      });
    }

    // Each node rebooted exactly once (the kill -9 was a crash, not a reboot), into the new
    // slot, which its boot checks blessed; the previous image stays in the other slot.
    for (const host of HOSTS) expect({ host, reboots: reboots(host) - (before.get(host) ?? 0) }).toEqual({ host, reboots: 1 });
    for (const n of all) {
      const onDisk = slotsOnDisk(dataDir(n.hostname));
      const other = onDisk.active === 'a' ? 'b' : 'a';
      expect({ host: n.hostname, active: onDisk.slots[onDisk.active], other: onDisk.slots[other]?.version, next: onDisk.next, tries: onDisk.tries_left }).toEqual({
        host: n.hostname,
        active: expect.objectContaining({ version: '2.0.0', blessed: true }),
        other: '1.0.0',
        next: onDisk.active,
        tries: 0,
      });
      const slots = (await node(n.id)).slots as BootSlotsReport;
      expect(slots[slots.active].version).toBe('2.0.0');
    }
  }, 600_000);

  it('an image whose boot checks fail falls back to the previous slot on every node that got it with the operator stopped; back up, it sees reverted and the breaker trips', async () => {
    const before = new Map(HOSTS.map((h) => [h, reboots(h)]));
    const all = await nodes();
    const hostOf = new Map(all.map((n) => [n.id, n.hostname]));
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', {
      ...spec('broken-os', [{ component: 'os', version: '3.0.0' }], {}, { circuitBreaker: { maxConsecutiveFailures: 2 } }),
    });
    const checkedNodes = () => [...new Set(readLines(checksLog))];
    // The first batch (two nodes) boots 3.0.0 and its check waits at the gate: the operator goes away now.
    const first = await waitFor('the first boot checks of 3.0.0 on the first batch', async () => (checkedNodes().length === 2 ? checkedNodes() : undefined), 180_000, 100);
    const got = first.map((id) => hostOf.get(id) as string).sort();
    await fleet.stopProcess('operator');
    writeFileSync(gate, '');

    // Everything from here happens on the nodes alone: two more tries each, then the fallback boot.
    for (const host of got) {
      const record = await waitFor(
        `${host} back on its previous slot by itself`,
        async () => {
          const r = installRecord(dataDir(host), 'os');
          return r?.version === '3.0.0' && r.phase === 'reverted' ? r : undefined;
        },
        120_000,
      );
      expect(record.reason).toMatch(/^boot checks of 3\.0\.0 failed on every try \(last: required\.d\/10-boot failed \(exit code 1\): kernel panic \(simulated\)\); booted slot [ab] \(2\.0\.0\) again$/);
      const onDisk = slotsOnDisk(dataDir(host));
      const other = onDisk.active === 'a' ? 'b' : 'a';
      expect({ host, active: onDisk.slots[onDisk.active], other: onDisk.slots[other], next: onDisk.next, tries: onDisk.tries_left, fallback: onDisk.fallback }).toEqual({
        host,
        active: expect.objectContaining({ version: '2.0.0', blessed: true }),
        other: expect.objectContaining({ version: '3.0.0', blessed: false }),
        next: onDisk.active,
        tries: 0,
        fallback: null,
      });
      // After try 1, after try 2, and the fallback after try 3.
      expect({ host, reboots: reboots(host) - (before.get(host) ?? 0) }).toEqual({ host, reboots: 4 });
    }
    const checks = readLines(checksLog);
    for (const id of first) expect({ host: hostOf.get(id), tries: checks.filter((l) => l === id).length }).toEqual({ host: hostOf.get(id), tries: 3 });

    // The operator comes back and learns it from the heartbeats: reverted with the reason, the tasks fail, the breaker trips.
    await fleet.startOperator(listen, operatorArgs);
    const ended = await waitEnd(created.id, 120_000);
    expect(['awaiting_decision', 'failed']).toContain(ended.status);
    const failed = ended.tasks.filter((t) => t.state === 'failed');
    expect(failed.map((t) => t.hostname).sort()).toEqual(got);
    for (const t of failed) expect(t.last_error).toMatch(/^install reverted: boot checks of 3\.0\.0 failed on every try/);
    expect(ended.tasks.filter((t) => !got.includes(t.hostname)).map((t) => t.state)).toEqual(['pending', 'pending', 'pending', 'pending']);
    const events = await api.get<EventRow[]>(`/api/v1/events?after=0&rollout_id=${created.id}&limit=1000`);
    expect(events.map((e) => e.kind)).toContain('rollout.circuit_breaker_tripped');
    const reverted = await api.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=node.reverted&limit=1000');
    expect(reverted.filter((e) => e.data.version === '3.0.0').map((e) => hostOf.get(e.node_id as string)).sort()).toEqual(got);
    for (const n of all) {
      const view = await node(n.id);
      const install = view.installs.find((i) => i.component === 'os' && i.version === '3.0.0');
      expect({ host: n.hostname, os: view.components.os, install: install ? [install.phase, /failed on every try/.test(install.reason ?? '')] : null }).toEqual({
        host: n.hostname,
        os: '2.0.0',
        install: got.includes(n.hostname) ? ['reverted', true] : null,
      });
    }
    // A failed node goes back to its old version (the one it already runs: no install, no
    // reboot) and is enabled again; the nodes that never got the image never rebooted.
    await waitFor('the failed nodes enabled again', async () => {
      const list = await nodes();
      return got.every((h) => list.find((n) => n.hostname === h)?.cordoned === false) ? true : undefined;
    }, 60_000);
    for (const host of HOSTS) expect({ host, reboots: reboots(host) - (before.get(host) ?? 0) }).toEqual({ host, reboots: got.includes(host) ? 4 : 0 });
    for (const host of got) expect(slotsOnDisk(dataDir(host)).slots[slotsOnDisk(dataDir(host)).active]).toMatchObject({ version: '2.0.0', blessed: true });
    await api.post(`/api/v1/rollouts/${created.id}/abort`);
  }, 420_000);
});
