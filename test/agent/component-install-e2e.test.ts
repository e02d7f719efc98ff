import { readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { InstallReport } from '../../src/domain/protocol.js';
import { signArtifact } from '../../src/signing.js';
import type { NodeView } from '../../src/store/nodes.js';
import { startTestFleet } from '../support/processes.js';
import { buildArchive, publisher, sha256File, tempDir } from './artifact-fixtures.js';

// The whole path with real processes: publish a signed artifact to the real operator (bytes in
// its database), point one node at it, and watch the real agent download, verify, install and
// assess it — then a broken v2 that the agent reverts by itself.

const OK = '#!/bin/sh\nexit 0\n';

describe('component install end to end: real operator, real agent', () => {
  let fleet: LocalFleet;
  let client: ApiClient;
  let node: NodeView;
  const HOST = 'us-east-worker-1';
  const dir = tempDir('components-e2e');
  const agentDir = join(dir, 'agent');

  beforeAll(async () => {
    fleet = await startTestFleet('components');
    client = fleet.client();
    const keyFile = join(dir, 'drydock-signing.pub');
    writeFileSync(keyFile, publisher.publicPem);
    // The last --data-dir wins: the test reads the agent's `current` link there.
    fleet.startAgent(HOST, 'us-east', ['--heartbeat-interval', '1s', '--trusted-key', keyFile, '--component-health-deadline', '5s', '--data-dir', agentDir]);
    [node] = (await fleet.waitForNodes(1)) as [NodeView];
  });

  afterAll(async () => {
    await fleet?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function publishVersion(version: string, health: string): Promise<void> {
    const archive = await buildArchive(dir, { 'web-server': `web ${version}`, health });
    const sha256 = sha256File(archive);
    const signature = signArtifact(publisher.privatePem, { component: 'web', version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature, public_key: publisher.publicPem });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: readFileSync(archive),
    });
    expect(response.status, await response.text()).toBeLessThan(300);
  }

  async function installOf(version: string, phase: InstallReport['phase']) {
    return waitFor(
      `web ${version} ${phase} on ${HOST}`,
      async () => {
        const view = await client.get<NodeView & { installs: InstallReport[] }>(`/api/v1/nodes/${node.id}`);
        const install = view.installs.find((i) => i.component === 'web' && i.version === version);
        return install?.phase === phase ? { view, install } : undefined;
      },
      30_000,
    );
  }

  const current = () => readlinkSync(join(agentDir, 'components', 'web', 'current'));

  it('installs a signed version the node is pointed at', async () => {
    await publishVersion('1.0.0', OK);
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/web`, { version: '1.0.0' });
    const { view } = await installOf('1.0.0', 'done');
    expect(view.components.web).toBe('1.0.0');
    expect(current()).toBe('1.0.0');
  });

  it('reverts a version whose health check fails, by itself, and says why', async () => {
    await publishVersion('2.0.0', '#!/bin/sh\necho "no upstream"\nexit 1\n');
    await client.request('PUT', `/api/v1/nodes/${node.id}/components/web`, { version: '2.0.0' });
    const { view, install } = await installOf('2.0.0', 'reverted');
    expect(install.reason).toBe('health failed (exit code 1): no upstream');
    expect(view.components.web).toBe('1.0.0');
    expect(current()).toBe('1.0.0');
  });
});
