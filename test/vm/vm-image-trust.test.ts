import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { generateSigningKeyPair } from '../../src/signing.js';
import type { InstanceView } from '../../src/store/instances.js';
import { publishVmImage } from '../../src/vm/publish-image.js';
import { ensureGuestImage } from '../support/guest-image.js';
import { processesMentioning } from '../../src/demo/leftovers.js';
import { startTestFleet } from '../support/processes.js';

// A vm-image is verified on the node like every component (DESIGN.md §10): an agent that does
// not trust the key that signed it refuses to boot it — no QEMU starts, the instance says why.
describe('vm driver: an image signed by a key the agent does not trust never boots', () => {
  let fleet: LocalFleet;

  beforeAll(async () => {
    const image = await ensureGuestImage();
    fleet = await startTestFleet('vm-trust');
    const signer = generateSigningKeyPair();
    const trusted = generateSigningKeyPair();
    const keyFile = join(fleet.dir, 'other.pub');
    writeFileSync(keyFile, trusted.publicPem);
    fleet.startAgent('trust-a', 'us-east', ['--heartbeat-interval', '1s', '--trusted-key', keyFile, '--vm-accel', 'tcg']);
    await fleet.waitForNodes(1);
    const imageRef = await publishVmImage(fleet.operatorUrl, image, signer);
    await fleet.client().post('/api/v1/deployments', { name: 'untrusted', replicas: 1, workload: { driver: 'vm', image: imageRef } });
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('refuses the image with a bad-signature reason and starts no QEMU', async () => {
    const failed = await waitFor(
      'the instance to fail with the refusal',
      async () => (await fleet.client().get<InstanceView[]>('/api/v1/instances')).find((i) => i.status === 'failed' && /refused/.test(i.message ?? '')),
      60_000,
    );
    expect(failed.message).toMatch(/vm-image drydock-guest@\S+ refused: bad signature/);
    expect(failed.healthy).toBe(false);
    expect(failed.published).toBe(false);
    expect(processesMentioning(fleet.dir).filter((pid) => fleet.spawnedPids.has(pid) === false)).toEqual([]);
  });
});
