import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { InstallReport } from '../../src/domain/protocol.js';
import { signArtifact } from '../../src/signing.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';
import { publisher, sha256File, tempDir } from './artifact-fixtures.js';

// Agent self-upgrade with real processes: `drydock supervisor` runs agent v1 (the dist bundle),
// a v2 bundle built from the same code is published signed to the real operator, and the node
// is pointed at it. Then broken builds — one that exits at start, one that never proves itself
// (with the supervisor killed -9 in the middle) — and the node goes back to v2 by itself.
// Instances keep their PIDs throughout: an agent upgrade needs no drain.

const HOST = 'us-east-worker-1';
const DEADLINE_S = 15;

type NodeDetail = NodeView & { installs: InstallReport[] };

describe('agent self-upgrade under the supervisor', () => {
  const dir = tempDir('self-upgrade');
  const agentDir = join(dir, 'agent');
  const bundles = {
    '2.0.0': join(dir, 'drydock-2.0.0.mjs'),
    '2.0.1': join(dir, 'drydock-2.0.1.mjs'),
    '2.0.2': join(dir, 'drydock-2.0.2.mjs'),
  };
  const agentPids = new Set<number>();
  let fleet: LocalFleet;
  let client: ApiClient;
  let node: NodeView;
  let instancePids: number[] = [];

  const supervisorArgs = () => {
    const keyFile = join(dir, 'drydock-signing.pub');
    return [
      'supervisor', '--data-dir', agentDir, '--deadline', `${DEADLINE_S}s`, '--',
      'agent', '--operator', fleet.operatorUrl, '--hostname', HOST, '--region', 'us-east', '--listen', '127.0.0.1:0',
      '--heartbeat-interval', '1s', '--trusted-key', keyFile,
    ];
  };

  beforeAll(async () => {
    // v2 is the same code with another version baked in; the broken ones are tiny real scripts.
    execFileSync(process.execPath, [resolve(import.meta.dirname, '../../scripts/build.mjs')], {
      env: { ...process.env, DRYDOCK_BUILD_VERSION: '2.0.0', DRYDOCK_BUILD_OUTFILE: bundles['2.0.0'] },
      stdio: 'ignore',
    });
    writeFileSync(bundles['2.0.1'], "console.error('broken build: exits at start');\nprocess.exit(1);\n");
    writeFileSync(bundles['2.0.2'], "console.error('broken build: runs but never talks to the operator');\nsetInterval(() => {}, 1000);\n");
    writeFileSync(join(dir, 'drydock-signing.pub'), publisher.publicPem);

    fleet = await startTestFleet('self-upgrade');
    client = fleet.client();
    fleet.spawn('supervisor', supervisorArgs());
    [node] = (await fleet.waitForNodes(1)) as [NodeView];
    await client.post('/api/v1/deployments', {
      name: 'web',
      replicas: 2,
      min_available: 1,
      workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' },
    });
    const instances = await waitFor(
      'two healthy instances',
      async () => {
        const list = await client.get<InstanceView[]>(`/api/v1/nodes/${node.id}/instances`);
        return list.filter((i) => i.healthy && i.pid).length === 2 ? list : undefined;
      },
      30_000,
    );
    instancePids = instances.map((i) => i.pid as number).sort();
    await fleet.recordInstancePids();
  });

  afterAll(async () => {
    noteAgentPid();
    await fleet?.stop();
    for (const pid of [...agentPids].filter(isAlive)) process.kill(pid, 'SIGKILL');
    const left = [...(fleet?.spawnedPids ?? []), ...agentPids, ...(fleet?.instancePids ?? []), ...processesMentioning(dir)].filter(isAlive);
    rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  });

  /** The agent the supervisor runs now (every one is killed and checked at the end). */
  function noteAgentPid(): number | undefined {
    try {
      const pid = (JSON.parse(readFileSync(join(agentDir, 'supervisor.json'), 'utf8')) as { agent_pid?: number }).agent_pid;
      if (pid) agentPids.add(pid);
      return pid;
    } catch {
      return undefined;
    }
  }

  async function publishAgent(version: keyof typeof bundles): Promise<void> {
    const sha256 = sha256File(bundles[version]);
    const signature = signArtifact(publisher.privatePem, { component: 'node-agent', version, kind: 'agent', sha256 });
    const query = new URLSearchParams({ component: 'node-agent', version, kind: 'agent', signature, public_key: publisher.publicPem });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: readFileSync(bundles[version]),
    });
    expect(response.status, await response.text()).toBeLessThan(300);
  }

  async function installOf(version: string, phase: InstallReport['phase'], timeoutMs: number) {
    return waitFor(
      `node-agent ${version} ${phase} on ${HOST}`,
      async () => {
        noteAgentPid();
        const view = await client.get<NodeDetail>(`/api/v1/nodes/${node.id}`);
        const install = view.installs.find((i) => i.component === 'node-agent' && i.version === version);
        return install?.phase === phase ? { view, install } : undefined;
      },
      timeoutMs,
    );
  }

  async function expectInstancesUntouched(): Promise<void> {
    const instances = await client.get<InstanceView[]>(`/api/v1/nodes/${node.id}/instances`);
    expect(instances.map((i) => i.pid).sort()).toEqual(instancePids);
    for (const pid of instancePids) expect(isAlive(pid)).toBe(true);
    // Re-adopted, not just alive: the running agent reports them healthy.
    await waitFor('instances healthy under the new agent', async () => {
      const list = await client.get<InstanceView[]>(`/api/v1/nodes/${node.id}/instances`);
      return list.every((i) => i.healthy) ? true : undefined;
    }, 15_000);
  }

  const current = () => readlinkSync(join(agentDir, 'components', 'node-agent', 'current'));

  it('runs the bundle it was started from as the first recorded version', async () => {
    const view = await client.get<NodeDetail>(`/api/v1/nodes/${node.id}`);
    expect(view.agent_version).toBe(DRYDOCK_VERSION_OF_DIST);
    expect(view.components['node-agent']).toBe(DRYDOCK_VERSION_OF_DIST);
    expect(current()).toBe(DRYDOCK_VERSION_OF_DIST);
  });

  it('upgrades the agent to a signed v2: proven by its heartbeat, instances keep their PIDs', async () => {
    const firstAgent = noteAgentPid();
    await publishAgent('2.0.0');
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/node-agent`, { version: '2.0.0' });
    const { view } = await installOf('2.0.0', 'done', 45_000);
    expect(view.agent_version).toBe('2.0.0');
    expect(view.components['node-agent']).toBe('2.0.0');
    expect(current()).toBe('2.0.0');
    expect(noteAgentPid()).not.toBe(firstAgent);
    await expectInstancesUntouched();
    const events = await client.get<{ kind: string; data: { component: string; version: string } }[]>(`/api/v1/events?kind_prefix=node.install`);
    expect(events.filter((e) => e.data.component === 'node-agent').map((e) => `${e.kind} ${e.data.version}`)).toEqual([
      'node.install_started 2.0.0',
      'node.install_completed 2.0.0',
    ]);
  });

  it('an agent build that exits at start: back on v2 by itself within the deadline, reverted with the reason', async () => {
    await publishAgent('2.0.1');
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/node-agent`, { version: '2.0.1' });
    // The bound of this wait is the requirement: reverted within the supervisor's deadline.
    const { view, install } = await installOf('2.0.1', 'reverted', DEADLINE_S * 1000);
    expect(install.reason).toMatch(/^agent 2\.0\.1 exited 3 times in a row before it was proven \(last: exit code 1\); back on 2\.0\.0$/);
    expect(view.agent_version).toBe('2.0.0');
    expect(view.components['node-agent']).toBe('2.0.0');
    expect(current()).toBe('2.0.0');
    await expectInstancesUntouched();
  });

  it('a build that never proves itself, with the supervisor killed -9 meanwhile: reverted at the deadline', async () => {
    await publishAgent('2.0.2');
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/node-agent`, { version: '2.0.2' });
    // The hanging build runs (the supervisor says so), then its supervisor dies.
    const hanging = await waitFor('the 2.0.2 agent to run', async () => {
      const pid = noteAgentPid();
      return pid && isAlive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('2.0.2') ? pid : undefined;
    }, 30_000);
    const supervisor = fleet.processes.get('supervisor')!;
    await fleet.stopProcess('supervisor', 'SIGKILL');
    expect(isAlive(supervisor.pid)).toBe(false);
    expect(isAlive(hanging)).toBe(true); // orphaned; not our code, so it does not notice
    fleet.spawn('supervisor', supervisorArgs());
    const { view, install } = await installOf('2.0.2', 'reverted', (DEADLINE_S + 30) * 1000);
    expect(install.reason).toMatch(new RegExp(`^agent 2\\.0\\.2 was not proven healthy within ${DEADLINE_S} s`));
    expect(isAlive(hanging)).toBe(false);
    expect(view.agent_version).toBe('2.0.0');
    expect(current()).toBe('2.0.0');
    await expectInstancesUntouched();
  });
});

const DRYDOCK_VERSION_OF_DIST = (JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;

/** PIDs of processes whose command line mentions `path` (the test's own process excluded). */
function processesMentioning(path: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(path)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}
