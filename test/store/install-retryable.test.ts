import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstallReport } from '../../src/domain/protocol.js';
import { recordInstallReports } from '../../src/store/node-components.js';
import { registerNode } from '../../src/store/nodes.js';
import { loadNodeFacts } from '../../src/store/rollout-facts.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { registerRequest } from '../support/store-fixtures.js';

describe(`the retryable flag of stored install reports on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  const failed = (updatedAt: string, retryable?: boolean): InstallReport => ({
    component: 'hypervisor',
    version: '2.0.0',
    previous_version: '1.0.0',
    phase: 'failed',
    reason: 'download failed: HTTP 503',
    ...(retryable === undefined ? {} : { retryable }),
    updated_at: updatedAt,
  });
  const installOf = async (node: string) => (await loadNodeFacts(t.db, [node], 'hypervisor')).get(node)?.install;

  it('reaches the rollout as reported; absent when the agent sent none', async () => {
    const node = (await registerNode(t.db, registerRequest('retry-a'), 'retry-a')).id;
    await t.db.transaction((tx) => recordInstallReports(tx, [{ nodeId: node, installs: [failed('2026-01-01T00:00:00Z')] }]));
    const legacy = await installOf(node);
    expect(legacy).toMatchObject({ phase: 'failed', reason: 'download failed: HTTP 503' });
    expect(legacy).not.toHaveProperty('retryable');

    // Only the flag changes: the row follows it (no new install event, the phase is the same).
    await t.db.transaction((tx) => recordInstallReports(tx, [{ nodeId: node, installs: [failed('2026-01-01T00:00:01Z', true)] }]));
    expect(await installOf(node)).toMatchObject({ phase: 'failed', retryable: true });
    await t.db.transaction((tx) => recordInstallReports(tx, [{ nodeId: node, installs: [failed('2026-01-01T00:00:02Z', false)] }]));
    expect(await installOf(node)).toMatchObject({ phase: 'failed', retryable: false });
  });
});
