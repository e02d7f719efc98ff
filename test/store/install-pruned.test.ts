import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstallReport } from '../../src/domain/protocol.js';
import { insertArtifact } from '../../src/store/artifacts.js';
import { commitBlob, stageBlob } from '../../src/store/blobs.js';
import { loadDesiredStates } from '../../src/store/desired-state.js';
import { listEvents } from '../../src/store/events.js';
import { desiredComponentsForNode, recordInstallReports, setNodeComponent } from '../../src/store/node-components.js';
import { registerNode } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { registerRequest } from '../support/store-fixtures.js';

describe(`pruned component versions reported by agents on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const done = (updatedAt: string, pruned?: string[]): InstallReport => ({
    component: 'web',
    version: '3.0.0',
    previous_version: '2.0.0',
    phase: 'done',
    ...(pruned ? { pruned, kept: ['3.0.0', '2.0.0'] } : {}),
    updated_at: updatedAt,
  });
  const record = (node: string, report: InstallReport) => t.db.transaction((tx) => recordInstallReports(tx, [{ nodeId: node, installs: [report] }]));
  const pruneEvents = async (node: string) => (await listEvents(t.db, { after: 0, nodeId: node, kindPrefix: 'node.components_pruned', limit: 100 })).map((e) => e.data);

  it('records node.components_pruned once per pruning, with what went and what stayed; a repeated heartbeat adds nothing', async () => {
    const node = (await registerNode(t.db, registerRequest('prune-a'), 'prune-a')).id;
    await record(node, done('2026-01-01T00:00:00Z'));
    expect(await pruneEvents(node)).toEqual([]);
    await record(node, done('2026-01-01T00:00:01Z', ['1.0.0']));
    await record(node, done('2026-01-01T00:00:01Z', ['1.0.0']));
    await record(node, done('2026-01-01T00:00:02Z', ['1.0.0']));
    expect(await pruneEvents(node)).toEqual([{ component: 'web', version: '3.0.0', pruned: ['1.0.0'], kept: ['3.0.0', '2.0.0'] }]);
    const rows = await t.db.query<{ pruned: string[] }>('SELECT pruned FROM node_installs WHERE node_id = $1', [node]);
    expect(rows).toEqual([{ pruned: ['1.0.0'] }]);
    // The next install starts with nothing pruned; its own pruning is a new event.
    await record(node, { ...done('2026-01-01T00:00:03Z'), version: '4.0.0', previous_version: '3.0.0', phase: 'downloading' });
    await record(node, { ...done('2026-01-01T00:00:04Z', ['2.0.0']), version: '4.0.0', previous_version: '3.0.0' });
    expect((await pruneEvents(node)).map((d) => [d.version, d.pruned])).toEqual([
      ['3.0.0', ['1.0.0']],
      ['4.0.0', ['2.0.0']],
    ]);
  });

  it('tells the agent the version a rollback would return to: previous_version in the desired state', async () => {
    const node = (await registerNode(t.db, registerRequest('prune-b'), 'prune-b')).id;
    const staged = await stageBlob(t.db, (async function* () {
      yield Buffer.from('web 3.0.0');
    })());
    await t.db.transaction((tx) => commitBlob(tx, staged));
    await insertArtifact(t.db, { id: 'web-3', component: 'web', version: '3.0.0', kind: 'binary', sha256: staged.sha256, size: staged.size, signature: null, keyId: null, disruptive: false, createdBy: 'test' });
    await setNodeComponent(t.db, { nodeId: node, component: 'web', version: '3.0.0', artifactId: 'web-3', previousVersion: '2.0.0', rollback: false, force: false, updatedBy: 'test' });
    expect((await loadDesiredStates(t.db, [node])).get(node)?.components.web).toMatchObject({ version: '3.0.0', previous_version: '2.0.0' });
    expect((await desiredComponentsForNode(t.db, node)).web).toMatchObject({ version: '3.0.0', previous_version: '2.0.0' });
  });
});
