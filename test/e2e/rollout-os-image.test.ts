import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { isSameProcessAlive } from '../../src/agent/drivers/process-driver.js';
import { type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { BootSlotsReport } from '../../src/domain/protocol.js';
import type { EventRow } from '../../src/store/events.js';
import type { NodeView } from '../../src/store/nodes.js';
import { buildArchive, publisher, tempDir } from '../agent/artifact-fixtures.js';
import { buildOsImage, PASSING_CHECK, publishSigned, supervisedAgentPid } from '../support/os-image-fleet.js';
import { simulatedReboots } from '../../src/demo/simulated-reboots.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

// An OS image and a binary in one rollout, with real processes (issue 12, DESIGN.md §12): three
// nodes, each a real `drydock supervisor` running the agent with `--reboot-command exit` (a
// reboot is the agent exiting with code 76 and its supervisor starting it again). The rollout
// `targets: [os 2.0.0, web 2.0.0]` stages the image on each node while it still serves, then
// cordons and drains it once, reboots it once into the new slot (boot checks pass), installs
// web, runs preNode and postNode once each, and enables it again.

const HOSTS = ['os-worker-1', 'os-worker-2', 'os-worker-3'] as const;

type NodeDetail = NodeView & { slots: BootSlotsReport | null };
interface RolloutDetail {
  id: string;
  status: string;
  tasks: { hostname: string; state: string; last_error: string | null }[];
}

describe('an OS image and a binary in one drain per node, each node rebooted once', () => {
  const dir = tempDir('rollout-os-image');
  const hooksLog = join(dir, 'hooks.log');
  const agentPids = new Set<number>();
  let fleet: LocalFleet;
  let api: ApiClient;

  const nodes = () => api.get<NodeView[]>('/api/v1/nodes');
  const dataDir = (host: string) => join(dir, 'agents', host);

  const reboots = (host: string) => simulatedReboots(fleet.processes.get(host)!.log);

  function noteAgentPids(): void {
    for (const host of HOSTS) {
      const pid = supervisedAgentPid(dataDir(host));
      if (pid) agentPids.add(pid);
    }
  }

  beforeAll(async () => {
    writeFileSync(join(dir, 'drydock-signing.pub'), publisher.publicPem);
    fleet = await startTestFleet('rollout-os-image', ['--heartbeat-grace', '10s', '--heartbeat-interval', '1s']);
    api = fleet.client();
    for (const host of HOSTS) {
      fleet.startSupervisedAgent(host, 'us-east', BUNDLE, ['--heartbeat-interval', '1s', '--trusted-key', join(dir, 'drydock-signing.pub'), '--boot-tries', '3'], '30s', dataDir(host));
    }
    await fleet.waitForNodes(3, 60_000);
    for (const v of ['1.0.0', '2.0.0']) await publishSigned(fleet.operatorUrl, api, 'os', v, 'os-image', await buildOsImage(dir, v));
    for (const v of ['1.0.0', '2.0.0']) await publishSigned(fleet.operatorUrl, api, 'web', v, 'binary', await buildArchive(dir, { 'web-server': `web ${v}`, health: PASSING_CHECK }));
    for (const n of await nodes()) {
      await api.request('PUT', `/api/v1/nodes/${n.id}/components/os`, { version: '1.0.0' });
      await api.request('PUT', `/api/v1/nodes/${n.id}/components/web`, { version: '1.0.0' });
    }
    await waitFor(
      'every node on os and web 1.0.0',
      async () => ((await nodes()).every((n) => n.components.os === '1.0.0' && n.components.web === '1.0.0' && n.status === 'ready') ? true : undefined),
      120_000,
    );
    noteAgentPids();
  }, 240_000);

  afterAll(async () => {
    noteAgentPids();
    await fleet?.stop();
    await waitFor('agents to exit', async () => ([...agentPids].some((pid) => isSameProcessAlive(pid, null)) ? undefined : true), 20_000).catch(() => {
      for (const pid of agentPids) if (isSameProcessAlive(pid, null)) process.kill(pid, 'SIGKILL');
    });
    const left = [...(fleet?.spawnedPids ?? []), ...agentPids].filter((pid) => isSameProcessAlive(pid, null));
    rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  }, 60_000);

  it('stages the image while the node serves, then drains once, reboots once, installs web, and runs each hook once', async () => {
    const before = new Map(HOSTS.map((h) => [h, reboots(h)]));
    const hook = (point: string) => ['/bin/sh', '-c', `echo "${point} $DRYDOCK_NODE" >> '${hooksLog}'`];
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'os-and-web',
      targets: [
        { component: 'os', version: '2.0.0' },
        { component: 'web', version: '2.0.0' },
      ],
      selector: { regions: ['us-east'] },
      strategy: { batch: { size: 1 }, drain: { mode: 'migrate', timeout: '1m' }, health: { minHealthyTime: '1s', timeout: '2m' } },
      hooks: { preNode: [{ run: hook('preNode'), timeout: '30s' }], postNode: [{ run: hook('postNode'), timeout: '30s' }] },
    });
    const done = await waitFor(
      'the rollout to end',
      async () => {
        const r = await api.get<RolloutDetail>(`/api/v1/rollouts/${created.id}`);
        return ['completed', 'failed', 'awaiting_decision', 'aborted', 'rolled_back'].includes(r.status) ? r : undefined;
      },
      300_000,
    );
    noteAgentPids();
    expect({ status: done.status, open: done.tasks.filter((t) => t.state !== 'done') }).toEqual({ status: 'completed', open: [] });

    const all = await nodes();
    expect(all.map((n) => [n.hostname, n.components.os, n.components.web, n.cordoned]).sort()).toEqual(HOSTS.map((h) => [h, '2.0.0', '2.0.0', false]));
    // Each node rebooted exactly once for this rollout, into the new slot, now active and blessed.
    for (const host of HOSTS) expect({ host, reboots: reboots(host) - (before.get(host) ?? 0) }).toEqual({ host, reboots: 1 });
    for (const n of all) {
      const detail = await api.get<NodeDetail>(`/api/v1/nodes/${n.id}`);
      const slots = detail.slots as BootSlotsReport;
      expect({ host: n.hostname, active: slots[slots.active].version, pending: slots.tries_left }).toEqual({ host: n.hostname, active: '2.0.0', pending: 0 });
    }

    // Per node, in order: the image staged (still serving), one drain, the install of each target, done.
    const hostOf = new Map(all.map((n) => [n.id, n.hostname]));
    // The rollout's own events, and the installs its agents reported (those carry no rollout id).
    const events = [
      ...(await api.get<EventRow[]>(`/api/v1/events?after=0&rollout_id=${created.id}&limit=1000`)),
      ...(await api.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=node.install&limit=1000')),
    ];
    for (const host of HOSTS) {
      const mine = events.filter((e) => e.node_id && hostOf.get(e.node_id) === host).sort((a, b) => Number(a.id) - Number(b.id));
      const d = (e: EventRow) => e.data as { component?: string; version?: string; prestage?: boolean };
      const story = mine
        .filter((e) => (e.kind === 'node.component_version_set' || e.kind.startsWith('node.install')) ? d(e).version === '2.0.0' : ['node.drain_started', 'rollout.node_completed'].includes(e.kind))
        .map((e) => [e.kind, d(e).component, d(e).prestage ? 'prestage' : ''].filter(Boolean).join(' '));
      expect({ host, story }).toEqual({
        host,
        story: [
          'node.component_version_set os prestage',
          'node.install_started os',
          'node.drain_started',
          'node.component_version_set os',
          'node.install_completed os',
          'node.component_version_set web',
          'node.install_started web',
          'node.install_completed web',
          'rollout.node_completed',
        ],
      });
    }

    // Every hook ran exactly once per node, preNode before postNode.
    const lines = existsSync(hooksLog) ? readFileSync(hooksLog, 'utf8').trim().split('\n') : [];
    expect(lines).toEqual(HOSTS.flatMap((h) => [`preNode ${h}`, `postNode ${h}`]));
  }, 420_000);
});
