import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import type { DesiredState } from '../../src/domain/protocol.js';
import { isAlive, type LocalFleet } from '../../src/demo/local-fleet.js';
import type { ArtifactView } from '../../src/store/artifacts.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

const run = promisify(execFile);

describe('the artifacts CLI against a real operator', () => {
  let fleet: LocalFleet;
  let client: ApiClient;
  let dir: string;

  async function drydock(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [BUNDLE, ...args], { env: { ...process.env, DRYDOCK_URL: fleet.operatorUrl }, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout, stderr: e.stderr };
    }
  }

  beforeAll(async () => {
    fleet = await startTestFleet('artifacts');
    client = fleet.client();
    dir = mkdtempSync(join(tmpdir(), 'drydock-artifacts-cli-'));
  });
  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('generates keys, publishes, lists, blesses, promotes and points a node at the version', async () => {
    const keys = join(dir, 'keys');
    const generated = await drydock('keys', 'generate', '--out', keys);
    expect(generated.code).toBe(0);
    expect(statSync(join(keys, 'drydock-signing.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(keys, 'drydock-signing.pub')).isFile()).toBe(true);
    const again = await drydock('keys', 'generate', '--out', keys);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/refusing to overwrite/);

    const file = join(dir, 'nginx-1.26.0.tar.gz');
    writeFileSync(file, randomBytes(700_000));
    const args = ['artifacts', 'publish', '--component', 'nginx', '--version', '1.26.0', '--kind', 'binary', '--file', file, '--key', join(keys, 'drydock-signing.key')];
    const published = await drydock(...args);
    expect(published.stderr).toMatch(/published nginx 1.26.0/);
    expect(published.code).toBe(0);
    const id = published.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(JSON.parse((await drydock(...args, '--json')).stdout)).toMatchObject({ id, size: 700_000, lifecycle: 'draft' });
    writeFileSync(file, randomBytes(10));
    const conflict = await drydock(...args);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(/ARTIFACT_VERSION_EXISTS/);
    const badVersion = await drydock('artifacts', 'publish', '--component', 'nginx', '--version', '1.26', '--kind', 'binary', '--file', file);
    expect(badVersion.code).toBe(1);
    expect(badVersion.stderr).toMatch(/semantic version/);

    const list = await drydock('artifacts', 'list');
    expect(list.stdout.split('\n')[0]).toMatch(/^COMPONENT\s+VERSION\s+KIND\s+LIFECYCLE/);
    expect(list.stdout).toMatch(/nginx\s+1\.26\.0\s+binary\s+draft/);
    expect((await drydock('artifacts', 'bless', id)).stdout).toMatch(/nginx 1.26.0 is blessed/);
    expect((await drydock('artifacts', 'promote', id)).stdout).toMatch(/nginx 1.26.0 is live/);
    const shown = JSON.parse((await drydock('artifacts', 'show', id, '--json')).stdout) as ArtifactView;
    expect(shown).toMatchObject({ lifecycle: 'live', signature: expect.any(String), key_id: expect.any(String) });

    // A node to point at it: registered through the real agent gateway.
    const { node_id: nodeId } = await client.post<{ node_id: string }>('/api/v1/agent/register', {
      hostname: 'cli-node-1',
      region: 'us-east',
      max_instances: 2,
      agent_version: 'test',
      protocol_version: 1,
    });
    const missing = await drydock('node', 'set-version', 'cli-node-1', 'nginx', '9.9.9');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ARTIFACT_NOT_FOUND/);
    const set = await drydock('node', 'set-version', 'cli-node-1', 'nginx', '1.26.0');
    expect(set.stdout).toMatch(/cli-node-1: nginx → 1\.26\.0/);
    const desired = await client.post<DesiredState>('/api/v1/agent/heartbeat', {
      node_id: nodeId,
      agent_version: 'test',
      protocol_version: 1,
      components: {},
      instances: [],
      generation: 0,
    });
    expect(desired.components.nginx).toMatchObject({ version: '1.26.0', artifact_id: id, sha256: shown.sha256, signature: shown.signature, rollback: false });
    const archive = await drydock('artifacts', 'archive', id);
    expect(archive.code).toBe(1);
    expect(archive.stderr).toMatch(/ARTIFACT_IN_USE/);
  });
});
