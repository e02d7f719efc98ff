import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';
import { get, startTraffic } from '../support/endpoint-traffic.js';

const GRACE_S = 3;


describe('fleet end to end: real operator, three real agents, real instances', () => {
  let fleet: LocalFleet;
  let client: ApiClient;
  let deployment: DeploymentView;

  beforeAll(async () => {
    fleet = await startTestFleet('fleet', ['--heartbeat-grace', `${GRACE_S}s`]);
    client = fleet.client();
    for (const region of ['us-east', 'eu-west', 'ap-south']) fleet.startAgent(`${region}-worker-1`, region, ['--max-instances', '4', '--heartbeat-interval', '1s']);
    await fleet.waitForNodes(3);
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('places three replicas on three nodes and serves them through their endpoints', async () => {
    deployment = await client.post<DeploymentView>('/api/v1/deployments', {
      name: 'hello',
      replicas: 3,
      min_available: 2,
      workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' },
    });
    expect(deployment.id).toBeTruthy();
    const endpoints = await waitFor(
      'three healthy endpoints',
      async () => {
        const list = await client.get<{ instance_id: string; node_id: string; url: string; healthy: boolean }[]>(
          `/api/v1/deployments/${deployment.id}/endpoints`,
        );
        return list.filter((e) => e.healthy).length === 3 ? list : undefined;
      },
      30_000,
    );
    expect(new Set(endpoints.map((e) => e.node_id)).size).toBe(3);
    for (const e of endpoints) expect(await get(`${e.url}/health`)).toBe(200);
    const health = await client.get<{ status: string }>(`/api/v1/deployments/${deployment.id}/health`);
    expect(health.status).toBe('healthy');
    await fleet.recordInstancePids();
  });

  it('drains a node by live migration with zero failed requests, then enables it', async () => {
    const nodes = await client.get<NodeView[]>('/api/v1/nodes');
    const victim = nodes.find((n) => n.hostname === 'us-east-worker-1') as NodeView;
    expect(victim.active_instances).toBe(1);
    const before = await client.get<InstanceView[]>(`/api/v1/nodes/${victim.id}/instances`);
    const oldPid = before[0]?.pid as number;
    expect(isAlive(oldPid)).toBe(true);

    const traffic = startTraffic(client, deployment.id);
    await waitFor('traffic to flow', async () => (traffic.stats.sent > 20 ? true : undefined), 10_000);
    const drained = await client.post<NodeView>(`/api/v1/nodes/${victim.id}/drain`, {});
    expect(drained.status).toBe('draining');
    expect(drained.draining).toBe(true);

    const done = await waitFor(
      'the drain to complete',
      async () => {
        const node = await client.get<NodeView>(`/api/v1/nodes/${victim.id}`);
        return node.drain?.state === 'completed' ? node : undefined;
      },
      60_000,
    );
    expect(done.active_instances).toBe(0);
    // Keep calling a little after the old instance stopped: nothing may point at it any more.
    const sentAtDrain = traffic.stats.sent;
    await waitFor('more traffic after the drain', async () => (traffic.stats.sent > sentAtDrain + 50 ? true : undefined), 20_000);
    const stats = await traffic.stop();
    expect(stats.errors).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.sent).toBeGreaterThan(100);

    // The old process is gone, three healthy replicas serve from the other two nodes.
    await waitFor('the old instance process to exit', async () => (isAlive(oldPid) ? undefined : true), 15_000);
    const instances = await client.get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`);
    expect(instances.filter((i) => i.healthy && i.published)).toHaveLength(3);
    expect(instances.every((i) => i.node_id !== victim.id)).toBe(true);
    const migrations = await client.get<{ kind: string }[]>('/api/v1/events?kind_prefix=instance.migration_');
    expect(migrations.map((e) => e.kind)).toEqual(['instance.migration_started', 'instance.migration_completed']);

    const enabled = await client.post<NodeView>(`/api/v1/nodes/${victim.id}/enable`);
    expect(enabled.status).toBe('ready');
    expect(enabled.drain).toBeNull();
    await fleet.recordInstancePids();
  });

  it('marks a node down within the grace period after its agent is killed -9, and the agent restarts adopting its instances', async () => {
    const victim = (await client.get<NodeView[]>('/api/v1/nodes')).find((n) => n.hostname === 'eu-west-worker-1') as NodeView;
    const hostedBefore = await client.get<InstanceView[]>(`/api/v1/nodes/${victim.id}/instances`);
    expect(hostedBefore.length).toBeGreaterThan(0);
    const pidsBefore = hostedBefore.map((i) => i.pid).sort();

    await fleet.stopProcess('eu-west-worker-1', 'SIGKILL');
    // The bound of this wait is the requirement: down within the grace period plus 2 s.
    await waitFor(
      'the node to be down',
      async () => ((await client.get<NodeView>(`/api/v1/nodes/${victim.id}`)).status === 'down' ? true : undefined),
      (GRACE_S + 2) * 1000,
      100,
    );
    // Its instances outlived the agent.
    for (const pid of pidsBefore) expect(isAlive(pid as number)).toBe(true);

    fleet.startAgent('eu-west-worker-1', 'eu-west', ['--max-instances', '4', '--heartbeat-interval', '1s']);
    const back = await waitFor(
      'the node to be ready with healthy instances',
      async () => {
        const node = await client.get<NodeView>(`/api/v1/nodes/${victim.id}`);
        const hosted = await client.get<InstanceView[]>(`/api/v1/nodes/${victim.id}/instances`);
        return node.status === 'ready' && hosted.length === hostedBefore.length && hosted.every((i) => i.healthy) ? hosted : undefined;
      },
      20_000,
    );
    expect(back.map((i) => i.pid).sort()).toEqual(pidsBefore);
    expect(back.map((i) => i.id).sort()).toEqual(hostedBefore.map((i) => i.id).sort());
    const nodes = await client.get<NodeView[]>('/api/v1/nodes');
    expect(nodes.filter((n) => n.hostname === 'eu-west-worker-1')).toHaveLength(1);
    expect(nodes.find((n) => n.hostname === 'eu-west-worker-1')?.id).toBe(victim.id);
  });
});
