import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { generateSigningKeyPair } from '../../src/signing.js';
import { publishVmImage } from '../../src/vm/publish-image.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { EventRow } from '../../src/store/events.js';
import type { MigrationView } from '../../src/store/instance-migrations.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { ensureGuestImage, type GuestImage, type GuestStatus, guestStatus } from '../support/guest-image.js';
import { startTestFleet } from '../support/processes.js';


/** GET /status through the edge every `everyMs`, keep-alive; every answer's boot id is kept. */
function trafficThroughEdge(url: string, everyMs: number) {
  const stats = { sent: 0, failed: 0, errors: [] as string[], bootIds: new Set<string>() };
  let running = true;
  const done = (async () => {
    while (running) {
      stats.sent++;
      try {
        const response = await fetch(`${url}/d/vmweb/status`, { signal: AbortSignal.timeout(5000) });
        if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
        stats.bootIds.add(((await response.json()) as GuestStatus).boot_id);
      } catch (error) {
        stats.failed++;
        stats.errors.push((error as Error).message);
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    stats,
    async stop() {
      running = false;
      await done;
      return stats;
    },
  };
}

// DESIGN.md §10 end to end: a real operator, three real agents hosting real QEMU VMs (TCG), the
// edge in front. Draining a node moves its VM live: the guest keeps its boot id and its request
// counter keeps rising, and no request through the edge fails.
describe('vm driver: a drain moves running VMs live, state intact, zero failed requests', () => {
  let fleet: LocalFleet;
  let image: GuestImage;
  let edge: string;
  let deployment: DeploymentView;

  beforeAll(async () => {
    image = await ensureGuestImage();
    fleet = await startTestFleet('vm-drain');
    const keys = generateSigningKeyPair();
    const keyFile = join(fleet.dir, 'signing.pub');
    writeFileSync(keyFile, keys.publicPem);
    for (const name of ['vm-a', 'vm-b', 'vm-c']) {
      fleet.startAgent(name, 'us-east', ['--max-instances', '2', '--heartbeat-interval', '1s', '--trusted-key', keyFile, '--vm-accel', 'tcg', '--drain-delay', '300ms']);
    }
    await fleet.waitForNodes(3);
    const imageRef = await publishVmImage(fleet.operatorUrl, image, keys);
    deployment = await fleet.client().post<DeploymentView>('/api/v1/deployments', {
      name: 'vmweb',
      replicas: 3,
      min_available: 2,
      workload: { driver: 'vm', image: imageRef, memory_mb: 128, vcpus: 1, guest_port: image.imageJson.guest_port },
    });
    await waitFor(
      'three VMs serving',
      async () => {
        await fleet.recordInstancePids();
        const instances = await fleet.client().get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`);
        return instances.filter((i) => i.published && i.healthy).length === 3 ? true : undefined;
      },
      120_000,
    );
    await fleet.recordInstancePids();
    edge = await fleet.startEdge(`127.0.0.1:${await freePort()}`);
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('drains a node under traffic: its VM arrives elsewhere with the same boot id, counter rising, no failed request', async () => {
    const client = fleet.client();
    const instances = await client.get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`);
    const moving = instances[0] as InstanceView;
    const before = await guestStatus(moving.url as string);
    expect(before.boot_id).toMatch(/^[0-9a-f-]{36}$/);

    const traffic = trafficThroughEdge(edge, 20);
    await waitFor('traffic flowing', async () => (traffic.stats.sent > 20 ? true : undefined), 10_000);
    const sentBeforeDrain = traffic.stats.sent;
    await client.post<NodeView>(`/api/v1/nodes/${moving.node_id}/drain`, {});
    const move = await waitFor(
      'the live migration to complete',
      async () => (await client.get<MigrationView[]>(`/api/v1/migrations?instance=${moving.id}`)).find((m) => m.state === 'completed' || m.state === 'failed'),
      120_000,
    );
    await waitFor(
      'the drain to complete',
      async () => ((await client.get<NodeView>(`/api/v1/nodes/${moving.node_id}`)).drain?.state === 'completed' ? true : undefined),
      60_000,
    );
    await new Promise((r) => setTimeout(r, 500)); // a little traffic after the switchover too
    const stats = await traffic.stop();
    await fleet.recordInstancePids();

    expect(move).toMatchObject({ mode: 'live', trigger: 'drain', state: 'completed' });
    expect(move.downtime_ms).toBeGreaterThanOrEqual(0);
    expect(move.total_ms).toBeGreaterThan(0);
    expect(move.transferred_bytes).toBeGreaterThan(1_000_000);
    const target = await client.get<InstanceView>(`/api/v1/instances/${move.target_instance_id}`);
    expect(target).toMatchObject({ published: true, healthy: true, node_id: move.target_node_id });
    expect(target.node_id).not.toBe(moving.node_id);
    // The same guest, not a new boot: its memory came along.
    const after = await guestStatus(target.url as string);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);
    expect(stats.bootIds.has(before.boot_id)).toBe(true);
    expect({ failed: stats.failed, errors: stats.errors.slice(0, 5) }).toEqual({ failed: 0, errors: [] });
    // Requests flowed all through the move, not only before it.
    expect(stats.sent - sentBeforeDrain).toBeGreaterThan(10);
    // The source QEMU is gone; the events carry the numbers.
    expect(isAlive(moving.pid as number)).toBe(false);
    const events = await client.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=migration.completed');
    expect(events.find((e) => e.data.migration_id === move.id)?.data).toMatchObject({ downtime_ms: move.downtime_ms, total_ms: move.total_ms });
  });
});
