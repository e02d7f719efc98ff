import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findArtifact, insertArtifact, listArtifacts, type NewArtifact, nodesUsingVersion, setLifecycle } from '../../src/store/artifacts.js';
import { commitBlob, stageBlob } from '../../src/store/blobs.js';
import { listEvents } from '../../src/store/events.js';
import { desiredComponentsForNode, recordInstallReports, setNodeComponent } from '../../src/store/node-components.js';
import { findNode, recordHeartbeats, registerNode } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { heartbeat, registerRequest } from '../support/store-fixtures.js';

describe(`store/artifacts and node components on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let sha: string;
  const artifact = (overrides: Partial<NewArtifact>): NewArtifact => ({
    id: 'a-1',
    component: 'hypervisor',
    version: '1.0.0',
    kind: 'binary',
    sha256: sha,
    size: 100,
    signature: null,
    keyId: null,
    disruptive: true,
    createdBy: 'test',
    ...overrides,
  });

  beforeAll(async () => {
    t = await createTestDb();
    const staged = await stageBlob(t.db, (async function* () {
      yield randomBytes(100);
    })());
    await t.db.transaction((tx) => commitBlob(tx, staged));
    sha = staged.sha256;
  });
  afterAll(async () => t.cleanup());

  it('inserts once per component+version and returns the stored row on a repeat', async () => {
    const first = await insertArtifact(t.db, artifact({ id: 'hv-1' }));
    expect(first).toMatchObject({ created: true, artifact: { id: 'hv-1', lifecycle: 'draft', size: 100, disruptive: true } });
    const again = await insertArtifact(t.db, artifact({ id: 'hv-1-again' }));
    expect(again).toMatchObject({ created: false, artifact: { id: 'hv-1' } });
    expect((await listArtifacts(t.db, { component: 'hypervisor' })).map((a) => a.id)).toEqual(['hv-1']);
  });

  it('moves the lifecycle only from the expected state, and promote keeps one live version per component', async () => {
    await insertArtifact(t.db, artifact({ id: 'hv-2', version: '2.0.0' }));
    for (const id of ['hv-1', 'hv-2']) {
      expect(await setLifecycle(t.db, id, 'draft', 'blessed')).toEqual({ changed: true, demoted: [] });
    }
    expect(await setLifecycle(t.db, 'hv-1', 'draft', 'blessed')).toEqual({ changed: false, demoted: [] });
    expect(await setLifecycle(t.db, 'hv-1', 'blessed', 'live')).toEqual({ changed: true, demoted: [] });
    expect(await setLifecycle(t.db, 'hv-2', 'blessed', 'live')).toEqual({ changed: true, demoted: ['hv-1'] });
    expect((await findArtifact(t.db, 'hv-1'))?.lifecycle).toBe('blessed');
  });

  it('lists the nodes that run, want or would roll back to a version', async () => {
    const a = (await registerNode(t.db, registerRequest('art-a'), 'art-a')).id;
    const b = (await registerNode(t.db, registerRequest('art-b'), 'art-b')).id;
    await registerNode(t.db, registerRequest('art-c'), 'art-c');
    await recordHeartbeats(t.db, [heartbeat(a, [], { components: { hypervisor: '1.0.0' } })]);
    await setNodeComponent(t.db, { nodeId: b, component: 'hypervisor', version: '2.0.0', artifactId: 'hv-2', previousVersion: '1.0.0', rollback: false, force: false, updatedBy: 'test' });
    expect(await nodesUsingVersion(t.db, 'hypervisor', '1.0.0')).toEqual([
      { node_id: a, hostname: 'art-a', reasons: ['runs'] },
      { node_id: b, hostname: 'art-b', reasons: ['rollback'] },
    ]);
    expect(await nodesUsingVersion(t.db, 'hypervisor', '2.0.0')).toEqual([{ node_id: b, hostname: 'art-b', reasons: ['desired'] }]);
    expect(await nodesUsingVersion(t.db, 'hypervisor', '3.0.0')).toEqual([]);
    expect(await desiredComponentsForNode(t.db, b)).toEqual({
      hypervisor: {
        version: '2.0.0',
        artifact_id: 'hv-2',
        kind: 'binary',
        sha256: sha,
        size: 100,
        signature: null,
        url: `/api/v1/agent/artifacts/hv-2/blob?node_id=${b}`,
        rollback: false,
        disruptive: true,
        request_id: expect.stringMatching(/^\d{20}$/),
        previous_version: '1.0.0',
      },
    });
  });

  it('stores install reports and writes one event per change, none for repeats or unknown nodes', async () => {
    const node = (await registerNode(t.db, registerRequest('inst-a'), 'inst-a')).id;
    const report = (phase: 'downloading' | 'verifying' | 'done', version = '2.0.0') => ({
      component: 'hypervisor',
      version,
      previous_version: '1.0.0',
      phase,
      updated_at: '2026-01-01T00:00:00Z',
    });
    const before = (await listEvents(t.db, { kindPrefix: 'node.install', nodeId: node })).length;
    for (const phase of ['downloading', 'downloading', 'verifying', 'done', 'done'] as const) {
      await t.db.transaction((tx) => recordInstallReports(tx, [{ nodeId: node, installs: [report(phase)] }, { nodeId: 'nobody', installs: [report(phase)] }]));
    }
    const events = await listEvents(t.db, { kindPrefix: 'node.install', nodeId: node });
    expect(events.slice(before).map((e) => [e.kind, e.data.phase])).toEqual([
      ['node.install_started', 'downloading'],
      ['node.install_completed', 'done'],
    ]);
    expect((await findNode(t.db, node))?.installs).toEqual([
      expect.objectContaining({ component: 'hypervisor', version: '2.0.0', previous_version: '1.0.0', phase: 'done', reason: null }),
    ]);
    expect(await t.db.query('SELECT 1 FROM node_installs WHERE node_id = $1', ['nobody'])).toEqual([]);
  });
});
