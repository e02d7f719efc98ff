import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readJournal } from '../../src/agent/components/journal.js';
import type { DesiredComponent } from '../../src/domain/protocol.js';
import { BlobServer, buildArchive, publish, reconciler, tempDir } from './artifact-fixtures.js';

// Pruning old component versions (issue 12, item 6) on a real data dir: real archives downloaded
// over HTTP, unpacked, switched, health-checked; then the old version dirs removed.

const OK = '#!/bin/sh\necho healthy\nexit 0\n';
const server = new BlobServer();
const dirs: string[] = [];

beforeAll(() => server.start());
afterAll(() => server.stop());
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function version(dir: string, v: string, previous: string | null): Promise<DesiredComponent> {
  const desired = publish(server, await buildArchive(dir, { 'web-server': `web ${v}`, health: OK }), { component: 'web', version: v });
  return { ...desired, previous_version: previous };
}

const onDisk = (dir: string) => readdirSync(join(dir, 'components', 'web')).filter((e) => !e.startsWith('.')).sort();

describe('pruning old component versions after a done install', () => {
  it('keeps the current and the previous version (default 2), removes older dirs once, reports it, and remembers it across restarts', async () => {
    const dir = tempDir('prune');
    dirs.push(dir);
    const { r, changes } = reconciler(dir, server);
    await r.reconcile({ web: await version(dir, '1.0.0', null) });
    await r.reconcile({ web: await version(dir, '2.0.0', '1.0.0') });
    // Two versions: nothing to prune, no report of it.
    expect(onDisk(dir)).toEqual(['1.0.0', '2.0.0', 'current']);
    expect(r.reports()[0]).not.toHaveProperty('pruned');

    const v3 = await version(dir, '3.0.0', '2.0.0');
    await r.reconcile({ web: v3 });
    expect(r.layout.currentVersion('web')).toBe('3.0.0');
    expect(onDisk(dir)).toEqual(['2.0.0', '3.0.0', 'current']);
    expect(existsSync(join(dir, 'components', 'web', '1.0.0'))).toBe(false);
    expect(r.reports()).toMatchObject([{ component: 'web', version: '3.0.0', previous_version: '2.0.0', phase: 'done', pruned: ['1.0.0'], kept: ['3.0.0', '2.0.0'] }]);
    // The agent heartbeats at once with what it pruned.
    expect(changes.at(-1)).toMatchObject({ version: '3.0.0', phase: 'done', pruned: ['1.0.0'] });
    expect(readJournal(join(dir, 'components', 'journal.json')).installs.web).toMatchObject({ pruned: ['1.0.0'], kept: ['3.0.0', '2.0.0'] });

    // A restarted agent (a new reconciler on the same data dir) does not prune or report again.
    const again = reconciler(dir, server);
    await again.r.reconcile({ web: v3 });
    expect(again.changes).toEqual([]);
    expect(onDisk(dir)).toEqual(['2.0.0', '3.0.0', 'current']);
  });

  it('never removes the version a pending rollback would return to (the desired previous_version), nor the one it replaced', async () => {
    const dir = tempDir('prune-protect');
    dirs.push(dir);
    const { r } = reconciler(dir, server);
    await r.reconcile({ web: await version(dir, '1.0.0', null) });
    await r.reconcile({ web: await version(dir, '2.0.0', '1.0.0') });
    // A rollout from 1.0.0 whose earlier attempt left 2.0.0 here: its rollback returns to 1.0.0.
    await r.reconcile({ web: await version(dir, '3.0.0', '1.0.0') });
    expect(onDisk(dir)).toEqual(['1.0.0', '2.0.0', '3.0.0', 'current']);
    expect(r.reports()[0]).not.toHaveProperty('pruned');
    // The rollback to 1.0.0 finds its dir and keeps the newer one it left.
    await r.reconcile({ web: { ...(await version(dir, '1.0.0', null)), rollback: true } });
    expect(r.layout.currentVersion('web')).toBe('1.0.0');
    expect(onDisk(dir)).toEqual(['1.0.0', '3.0.0', 'current']);
    expect(r.reports()).toMatchObject([{ version: '1.0.0', previous_version: '3.0.0', pruned: ['2.0.0'], kept: ['3.0.0', '1.0.0'] }]);
  });

  it('keeps more with --keep-versions, and nothing is pruned while an install is not done', async () => {
    const dir = tempDir('prune-keep');
    dirs.push(dir);
    const { r } = reconciler(dir, server, { keepVersions: 3 });
    for (const [v, prev] of [['1.0.0', null], ['1.1.0', '1.0.0'], ['1.2.0', '1.1.0'], ['1.3.0', '1.2.0']] as const) await r.reconcile({ web: await version(dir, v, prev) });
    expect(onDisk(dir)).toEqual(['1.1.0', '1.2.0', '1.3.0', 'current']);
    // A failing install (health exits 1) is reverted: nothing is pruned after it.
    const broken = publish(server, await buildArchive(dir, { 'web-server': 'broken', health: '#!/bin/sh\nexit 1\n' }), { component: 'web', version: '1.4.0' });
    await r.reconcile({ web: { ...broken, previous_version: '1.3.0' } });
    expect(r.reports()[0]).toMatchObject({ version: '1.4.0', phase: 'reverted' });
    expect(r.reports()[0]).not.toHaveProperty('pruned');
    expect(r.layout.currentVersion('web')).toBe('1.3.0');
    expect(onDisk(dir)).toEqual(expect.arrayContaining(['1.1.0', '1.2.0', '1.3.0']));
  });
});
