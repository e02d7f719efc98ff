import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { isSameProcessAlive } from '../../src/agent/drivers/process-driver.js';
import { type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { simulatedReboots } from '../../src/demo/simulated-reboots.js';
import type { BootSlotsReport } from '../../src/domain/protocol.js';
import { signArtifact } from '../../src/signing.js';
import type { ArtifactView } from '../../src/store/artifacts.js';
import type { EventRow } from '../../src/store/events.js';
import type { NodeView } from '../../src/store/nodes.js';
import { publisher, sha256File, tempDir } from '../agent/artifact-fixtures.js';
import { buildOsImage, installRecord, slotsOnDisk, supervisedAgentPid } from '../support/os-image-fleet.js';
import { pushImage, startRegistry, type TestRegistry } from '../support/oci-registry.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

const run = promisify(execFile);

// An os-image published by reference (issue 12, item 1): the image lives in a real OCI registry
// (Debian's docker-registry on loopback), pushed through its HTTP API; the operator records the
// reference and the signed digest of the image blob, no bytes. A real supervised agent fetches
// the manifest and its single layer from the registry, checks the blob against the signed
// sha256, stages it into its inactive A/B slot and reboots into it, as for an uploaded image;
// a registry blob that is not the signed one is refused like a bad signature.

const HOST = 'oci-worker-1';

describe('os-image artifacts by OCI reference, fetched from a real registry', () => {
  const dir = tempDir('os-image-oci');
  const agentPids = new Set<number>();
  let fleet: LocalFleet;
  let api: ApiClient;
  let registry: TestRegistry | undefined;
  let nodeId: string;
  const dataDir = join(dir, 'agents', HOST);
  const keyFile = join(dir, 'drydock-signing.key');

  const node = () => api.get<NodeView & { slots: BootSlotsReport | null }>(`/api/v1/nodes/${nodeId}`);
  const noteAgentPid = () => {
    const pid = supervisedAgentPid(dataDir);
    if (pid) agentPids.add(pid);
  };

  /** POST /api/v1/artifacts by reference (no body unless given); the raw answer. */
  async function publishRef(q: { component?: string; version: string; kind?: string; ref: string; sha256: string }, body?: Uint8Array<ArrayBuffer>): Promise<{ status: number; json: { id?: string; error?: { code: string; message: string } } }> {
    const component = q.component ?? 'os';
    const kind = q.kind ?? 'os-image';
    const signature = signArtifact(publisher.privatePem, { component, version: q.version, kind: kind as 'os-image', sha256: q.sha256 });
    const query = new URLSearchParams({ component, version: q.version, kind, ref: q.ref, sha256: q.sha256, signature, public_key: publisher.publicPem });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', ...(body ? { headers: { 'content-type': 'application/octet-stream' }, body } : {}) });
    return { status: response.status, json: (await response.json()) as { id?: string; error?: { code: string; message: string } } };
  }

  async function installOs(version: string): Promise<void> {
    await api.request('PUT', `/api/v1/nodes/${nodeId}/components/os`, { version });
  }

  beforeAll(async () => {
    writeFileSync(join(dir, 'drydock-signing.pub'), publisher.publicPem);
    writeFileSync(keyFile, publisher.privatePem, { mode: 0o600 });
    registry = await startRegistry(join(dir, 'registry'));
    fleet = await startTestFleet('os-image-oci', ['--heartbeat-grace', '10s', '--heartbeat-interval', '1s']);
    api = fleet.client();
    fleet.startSupervisedAgent(HOST, 'us-east', BUNDLE, ['--heartbeat-interval', '1s', '--trusted-key', join(dir, 'drydock-signing.pub'), '--boot-tries', '3'], '30s', dataDir);
    await fleet.waitForNodes(1, 60_000);
    nodeId = (await api.get<NodeView[]>('/api/v1/nodes'))[0]!.id;
    noteAgentPid();
  }, 120_000);

  afterAll(async () => {
    noteAgentPid();
    await fleet?.stop();
    await waitFor('the agent to exit', async () => ([...agentPids].some((pid) => isSameProcessAlive(pid, null)) ? undefined : true), 20_000).catch(() => {
      for (const pid of agentPids) if (isSameProcessAlive(pid, null)) process.kill(pid, 'SIGKILL');
    });
    await registry?.stop();
    const left = [...(fleet?.spawnedPids ?? []), ...agentPids, ...(registry ? [registry.pid] : [])].filter((pid) => isSameProcessAlive(pid, null));
    rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  }, 60_000);

  it('refuses a malformed ref, a ref on another kind, and a ref with a body, storing nothing', async () => {
    const host = registry!.host;
    const sha256 = 'a'.repeat(64);
    const cases = [
      { q: { version: '9.0.1', ref: `oci://${host}/os`, sha256 }, code: 'OCI_REF_INVALID' },
      { q: { version: '9.0.2', ref: `https://${host}/os:1`, sha256 }, code: 'OCI_REF_INVALID' },
      { q: { version: '9.0.3', ref: `oci://${host}/OS:1`, sha256 }, code: 'OCI_REF_INVALID' },
      { q: { version: '9.0.4', ref: `oci://${host}/os@sha256:abc`, sha256 }, code: 'OCI_REF_INVALID' },
      { q: { version: '9.0.5', kind: 'binary', ref: `oci://${host}/os:1`, sha256 }, code: 'OCI_REF_NOT_OS_IMAGE' },
    ];
    for (const c of cases) {
      const answer = await publishRef(c.q);
      expect({ ref: c.q.ref, status: answer.status, code: answer.json.error?.code }).toEqual({ ref: c.q.ref, status: 400, code: c.code });
    }
    const withBody = await publishRef({ version: '9.0.6', ref: `oci://${host}/os:1`, sha256 }, new TextEncoder().encode('an image file as well'));
    expect({ status: withBody.status, code: withBody.json.error?.code }).toEqual({ status: 400, code: 'OCI_REF_WITH_BODY' });
    // A ref without its digest: nothing to sign or check.
    const query = new URLSearchParams({ component: 'os', version: '9.0.7', kind: 'os-image', ref: `oci://${host}/os:1` });
    const noDigest = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST' });
    expect({ status: noDigest.status, code: ((await noDigest.json()) as { error: { code: string } }).error.code }).toEqual({ status: 400, code: 'VALIDATION_FAILED' });

    expect(await api.get<ArtifactView[]>('/api/v1/artifacts?component=os')).toEqual([]);
    const published = await api.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=artifact.published&limit=100');
    expect(published).toEqual([]);
  });

  it('installs an image by tag and one by digest from the registry into the A/B slots, and refuses a registry blob that is not the signed one', async () => {
    const host = registry!.host;
    const images = join(dir, 'images');
    const v1 = await buildOsImage(images, '1.0.0');
    const v2 = await buildOsImage(images, '2.0.0');
    const pushed1 = await pushImage(host, 'fleet/os', '1.0.0', v1);
    const pushed2 = await pushImage(host, 'fleet/os', '2.0.0', v2);
    expect(pushed1.layer).toBe(`sha256:${sha256File(v1)}`);

    // 1.0.0 by tag through the API; 2.0.0 pinned by manifest digest through the CLI.
    const first = await publishRef({ version: '1.0.0', ref: `oci://${host}/fleet/os:1.0.0`, sha256: sha256File(v1) });
    expect(first.status).toBe(201);
    const cli = await run(
      process.execPath,
      [BUNDLE, 'artifacts', 'publish', '--component', 'os', '--version', '2.0.0', '--kind', 'os-image', '--ref', `oci://${host}/fleet/os@${pushed2.manifest}`, '--sha256', sha256File(v2), '--key', keyFile, '--json'],
      { env: { ...process.env, DRYDOCK_URL: fleet.operatorUrl }, timeout: 60_000 },
    );
    const second = JSON.parse(cli.stdout) as ArtifactView;
    expect(second).toMatchObject({ component: 'os', version: '2.0.0', kind: 'os-image', reboot: true, size: 0, sha256: sha256File(v2), ref: `oci://${host}/fleet/os@${pushed2.manifest}`, lifecycle: 'draft' });
    expect(second.key_id).not.toBeNull();
    // The same publish again is a no-op (200, same artifact).
    const again = await publishRef({ version: '1.0.0', ref: `oci://${host}/fleet/os:1.0.0`, sha256: sha256File(v1) });
    expect({ status: again.status, id: again.json.id }).toEqual({ status: 200, id: first.json.id });
    for (const id of [first.json.id!, second.id]) await api.post(`/api/v1/artifacts/${id}/bless`);
    // Its bytes are not on the operator.
    const blob = await fetch(`${fleet.operatorUrl}/api/v1/artifacts/${second.id}/blob`);
    expect(blob.status).toBe(404);

    for (const version of ['1.0.0', '2.0.0']) {
      const rebootsBefore = simulatedReboots(fleet.processes.get(HOST)!.log);
      await installOs(version);
      await waitFor(
        `the node on os ${version}`,
        async () => {
          const n = await node();
          return n.components.os === version && n.status === 'ready' ? n : undefined;
        },
        120_000,
      );
      noteAgentPid();
      const slots = slotsOnDisk(dataDir);
      expect({ version, active: slots.slots[slots.active]?.version, next: slots.next, tries_left: slots.tries_left }).toEqual({ version, active: version, next: slots.active, tries_left: 0 });
      expect({ version, reboots: simulatedReboots(fleet.processes.get(HOST)!.log) - rebootsBefore }).toEqual({ version, reboots: 1 });
      expect(installRecord(dataDir, 'os')).toMatchObject({ version, phase: 'done' });
    }
    const detail = await node();
    expect(detail.slots?.[detail.slots.active].version).toBe('2.0.0');

    // 2.0.1: signed for one image, but the registry's tag holds another (a tampered or re-pushed tag).
    const signedImage = await buildOsImage(join(images, 'signed'), '2.0.1');
    const servedImage = await buildOsImage(join(images, 'served'), '2.0.1', '#!/bin/sh\necho tampered\nexit 0\n');
    expect(sha256File(servedImage)).not.toBe(sha256File(signedImage));
    await pushImage(host, 'fleet/os', '2.0.1', servedImage);
    const tampered = await publishRef({ version: '2.0.1', ref: `oci://${host}/fleet/os:2.0.1`, sha256: sha256File(signedImage) });
    expect(tampered.status).toBe(201);
    await api.post(`/api/v1/artifacts/${tampered.json.id}/bless`);
    const slotsBefore = slotsOnDisk(dataDir);
    const rebootsBefore = simulatedReboots(fleet.processes.get(HOST)!.log);
    await installOs('2.0.1');
    const refused = await waitFor(
      'the agent to refuse os 2.0.1',
      async () => {
        const record = installRecord(dataDir, 'os');
        return record?.version === '2.0.1' && record.phase === 'failed' ? record : undefined;
      },
      60_000,
    );
    expect(refused.reason).toMatch(new RegExp(`^sha256 mismatch: the artifact should be ${sha256File(signedImage)}, the downloaded bytes are ${sha256File(servedImage)}`));
    // The operator hears of it; nothing was staged nor rebooted; the node stays on 2.0.0.
    await waitFor(
      'the failed install to reach the operator',
      async () => ((await api.get<EventRow[]>('/api/v1/events?after=0&kind_prefix=node.install_failed&limit=100')).some((e) => (e.data as { version?: string }).version === '2.0.1') ? true : undefined),
      30_000,
    );
    expect(slotsOnDisk(dataDir)).toEqual(slotsBefore);
    expect(simulatedReboots(fleet.processes.get(HOST)!.log)).toBe(rebootsBefore);
    expect((await node()).components.os).toBe('2.0.0');
  }, 360_000);
});
