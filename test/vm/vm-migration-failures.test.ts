import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { generateSigningKeyPair } from '../../src/signing.js';
import { publishVmImage } from '../../src/vm/publish-image.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { MigrationView } from '../../src/store/instance-migrations.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { ensureGuestImage, type GuestStatus, guestStatus } from '../support/guest-image.js';
import { startTestFleet } from '../support/processes.js';


// A live migration that fails leaves the guest running and serving where it was (DESIGN.md §10):
// the target QEMU killed mid-transfer, the source agent killed -9 mid-transfer. A target agent
// killed -9 mid-transfer does not stop the transfer: its QEMU receives the guest and the
// restarted agent adopts it. Transfers are throttled (8 MiB/s, ~12 s for a 128 MiB guest) so
// there is time to break them.
describe('vm driver: failed live migrations keep the guest', () => {
  let fleet: LocalFleet;
  let deployment: DeploymentView;
  let agentArgs: string[];
  let nodes: NodeView[];
  const client = () => fleet.client();

  async function serving(): Promise<InstanceView> {
    return waitFor(
      'the VM serving',
      async () => {
        await fleet.recordInstancePids();
        const list = await client().get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`);
        return list.find((i) => i.published && i.healthy && i.desired === 'running');
      },
      60_000,
    );
  }

  /** Starts a live move of the serving VM to the other node and waits until the transfer runs. */
  async function startMove(): Promise<{ instance: InstanceView; before: GuestStatus; migrationId: string; targetHost: string }> {
    const instance = await serving();
    const before = await guestStatus(instance.url as string);
    const target = nodes.find((n) => n.id !== instance.node_id) as NodeView;
    const started = await client().post<{ migration_id: string }>(`/api/v1/instances/${instance.id}/migrate`, { target_node: target.id });
    await waitFor(
      'the transfer to run',
      async () => {
        await fleet.recordInstancePids();
        return (await client().get<MigrationView>(`/api/v1/migrations/${started.migration_id}`)).state === 'transferring' ? true : undefined;
      },
      60_000,
    );
    return { instance, before, migrationId: started.migration_id, targetHost: target.hostname };
  }

  async function ended(migrationId: string): Promise<MigrationView> {
    return waitFor(
      'the migration to end',
      async () => {
        const m = await client().get<MigrationView>(`/api/v1/migrations/${migrationId}`);
        return m.state === 'completed' || m.state === 'failed' ? m : undefined;
      },
      90_000,
    );
  }

  beforeAll(async () => {
    const image = await ensureGuestImage();
    // A long grace: one test holds a target agent stopped (SIGSTOP) for the length of a transfer.
    fleet = await startTestFleet('vm-fail', ['--heartbeat-grace', '60s']);
    const keys = generateSigningKeyPair();
    const keyFile = join(fleet.dir, 'signing.pub');
    writeFileSync(keyFile, keys.publicPem);
    agentArgs = ['--max-instances', '2', '--heartbeat-interval', '1s', '--trusted-key', keyFile, '--vm-accel', 'tcg', '--vm-migration-bandwidth', '8'];
    for (const name of ['fail-a', 'fail-b']) fleet.startAgent(name, 'us-east', agentArgs);
    nodes = await fleet.waitForNodes(2);
    const imageRef = await publishVmImage(fleet.operatorUrl, image, keys);
    deployment = await client().post<DeploymentView>('/api/v1/deployments', {
      name: 'vmfail',
      replicas: 1,
      workload: { driver: 'vm', image: imageRef, guest_port: image.imageJson.guest_port },
    });
    await serving();
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('the target QEMU killed mid-transfer: the move fails, the target is withdrawn, the guest serves on where it was', async () => {
    const { instance, before, migrationId } = await startMove();
    const move = await client().get<MigrationView>(`/api/v1/migrations/${migrationId}`);
    const targetPid = (await client().get<InstanceView>(`/api/v1/instances/${move.target_instance_id}`)).pid as number;
    expect(targetPid).toBeGreaterThan(0);
    process.kill(targetPid, 'SIGKILL');
    const failed = await ended(migrationId);
    expect(failed.state).toBe('failed');
    expect((await client().get<InstanceView>(`/api/v1/instances/${instance.id}`)).desired).toBe('running');
    const after = await guestStatus(instance.url as string);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);
    await waitFor('the target withdrawn', async () => {
      const list = await client().get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`);
      return list.every((i) => i.id !== move.target_instance_id || i.desired === 'stopped') ? true : undefined;
    }, 30_000);
  });

  it('the source agent killed -9 mid-transfer: its successor adopts the VM, cancels the transfer, and the guest serves on', async () => {
    const { instance, before, migrationId } = await startMove();
    const host = nodes.find((n) => n.id === instance.node_id)?.hostname as string;
    await fleet.stopProcess(host, 'SIGKILL');
    expect(isAlive(instance.pid as number)).toBe(true);
    fleet.startAgent(host, 'us-east', agentArgs);
    const failed = await ended(migrationId);
    expect(failed).toMatchObject({ state: 'failed' });
    // Cancelled by the successor; the target's QEMU quits when its incoming transfer breaks, and
    // whichever side's report reaches the operator first names the reason.
    expect(failed.reason).toMatch(/restarted during the transfer|target instance failed/);
    // The same QEMU, adopted: same pid, same guest.
    expect((await client().get<InstanceView>(`/api/v1/instances/${instance.id}`)).pid).toBe(instance.pid);
    const after = await guestStatus(instance.url as string);
    expect(after.boot_id).toBe(before.boot_id);
    await serving();
  });

  it('the target QEMU killed after the switchover, before it took over: the source resumes the guest it held paused', async () => {
    const { instance, before, migrationId, targetHost } = await startMove();
    const move = await client().get<MigrationView>(`/api/v1/migrations/${migrationId}`);
    const targetPid = (await client().get<InstanceView>(`/api/v1/instances/${move.target_instance_id}`)).pid as number;
    // The target agent cannot report the guest's arrival while it is stopped: the transfer
    // completes (QEMU to QEMU), the source hands the guest over, and the target dies first.
    const targetAgent = fleet.processes.get(targetHost)?.pid as number;
    process.kill(targetAgent, 'SIGSTOP');
    try {
      await waitFor('the source to hand the guest over', async () => ((await client().get<MigrationView>(`/api/v1/migrations/${migrationId}`)).state === 'switching' ? true : undefined), 90_000);
      // Paused on the source, its port closed: a request there is refused at once.
      await expect(fetch(instance.url as string, { signal: AbortSignal.timeout(3000) })).rejects.toThrow();
      process.kill(targetPid, 'SIGKILL');
    } finally {
      process.kill(targetAgent, 'SIGCONT');
    }
    const failed = await ended(migrationId);
    expect(failed).toMatchObject({ state: 'failed' });
    expect(failed.reason).toMatch(/after the transfer completed: the guest resumes on the source/);
    // The same QEMU and the same guest, serving again where it was.
    const resumed = await serving();
    expect(resumed).toMatchObject({ id: instance.id, pid: instance.pid });
    const after = await guestStatus(instance.url as string);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);
  });

  it('the target agent killed -9 mid-transfer: the transfer completes, the restarted agent adopts the guest', async () => {
    const { before, migrationId, targetHost } = await startMove();
    await fleet.stopProcess(targetHost, 'SIGKILL');
    fleet.startAgent(targetHost, 'us-east', agentArgs);
    const done = await ended(migrationId);
    expect(done).toMatchObject({ state: 'completed', mode: 'live' });
    const target = await client().get<InstanceView>(`/api/v1/instances/${done.target_instance_id}`);
    const after = await guestStatus(target.url as string);
    expect(after.boot_id).toBe(before.boot_id);
    expect(after.requests).toBeGreaterThan(before.requests);
  });
});
