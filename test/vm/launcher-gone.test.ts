import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { ApiClient } from '../../src/api-client.js';
import { isAlive, waitFor } from '../../src/demo/local-fleet.js';
import { generateSigningKeyPair } from '../../src/signing.js';
import { publishVmImage } from '../../src/vm/publish-image.js';
import type { InstanceView } from '../../src/store/instances.js';
import { ensureGuestImage } from '../support/guest-image.js';
import { BUNDLE } from '../support/processes.js';

// Nothing a launcher started outlives it (issue 10: "QEMU never outlives what should own it"):
// kill -9 the launcher of an operator and an agent hosting a VM and a process, and every one of
// them ends by itself — the agent stops its instances before it exits.
describe('a launcher killed -9 takes its fleet with it, VMs included', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-launcher-'));
  const pids = new Set<number>();

  afterAll(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('operator, agent, the VM and the process all end within the bound', async () => {
    const image = await ensureGuestImage();
    const keys = generateSigningKeyPair();
    writeFileSync(join(dir, 'signing.pub'), keys.publicPem);
    const port = await freePort();
    const launcher = spawn(
      process.execPath,
      [resolve(import.meta.dirname, '../support/launcher.mjs'), BUNDLE, dir, String(port), '--trusted-key', join(dir, 'signing.pub'), '--vm-accel', 'tcg', '--heartbeat-interval', '1s'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    pids.add(launcher.pid as number);
    const started = await new Promise<{ operator: number; agent: number }>((done) => launcher.stdout.once('data', (line) => done(JSON.parse(String(line)))));
    pids.add(started.operator).add(started.agent);
    const api = new ApiClient({ baseUrl: `http://127.0.0.1:${port}` });
    await waitFor('the node', async () => ((await api.get<unknown[]>('/api/v1/nodes').catch(() => [])).length === 1 ? true : undefined), 60_000);
    const imageRef = await publishVmImage(`http://127.0.0.1:${port}`, image, keys);
    await api.post('/api/v1/deployments', { name: 'vm', replicas: 1, workload: { driver: 'vm', image: imageRef } });
    await api.post('/api/v1/deployments', { name: 'proc', replicas: 1, workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' } });
    const instances = await waitFor(
      'both instances running',
      async () => {
        const list = await api.get<InstanceView[]>('/api/v1/instances');
        return list.length === 2 && list.every((i) => i.healthy && i.pid) ? list : undefined;
      },
      90_000,
    );
    for (const i of instances) pids.add(i.pid as number);
    expect([...pids].every(isAlive)).toBe(true);

    launcher.kill('SIGKILL');
    await waitFor('every process the launcher owned to end', async () => ([...pids].some(isAlive) ? undefined : true), 45_000);
  });
});
