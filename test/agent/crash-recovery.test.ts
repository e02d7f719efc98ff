import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readJournal, writeJournal } from '../../src/agent/components/journal.js';
import type { InstallRecord } from '../../src/domain/install-plan.js';
import type { ArtifactKind, DesiredComponent, InstallPhase } from '../../src/domain/protocol.js';
import { BlobServer, buildArchive, publish, reconciler, tempDir } from './artifact-fixtures.js';

// A kill -9 at each phase, reproduced the way it leaves the disk: the journal written in
// that phase plus whatever files that phase had made. A fresh reconciler (the restarted
// agent) must end every install done or reverted, never with `current` on an unproven version.

const OK = '#!/bin/sh\nexit 0\n';
const FAIL = '#!/bin/sh\necho still broken\nexit 1\n';
const server = new BlobServer();
const dirs: string[] = [];

beforeAll(() => server.start());
afterAll(() => server.stop());
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A node on web 1.0.0 (installed for real) and a v2 artifact; the journal is then rewritten as a crash left it. */
async function crashedIn(phase: InstallPhase, options: { kind?: ArtifactKind; health?: string; interrupted?: number; reverting?: string; files?: Record<string, string> } = {}) {
  const dir = tempDir('crash');
  dirs.push(dir);
  const kind = options.kind ?? 'binary';
  const scripts: Record<string, string> = kind === 'script' ? { install: OK, rollback: '#!/bin/sh\ntouch rolled-back\n' } : {};
  const { r: first } = reconciler(dir, server);
  const v1 = publish(server, await buildArchive(dir, { ...scripts, health: OK, 'web-server': 'v1' }), { component: 'web', version: '1.0.0', kind });
  await first.reconcile({ web: v1 });
  const v2 = publish(server, await buildArchive(dir, { ...scripts, health: options.health ?? OK, 'web-server': 'v2', ...options.files }), {
    component: 'web',
    version: '2.0.0',
    kind,
  });
  const layout = first.layout;
  if (phase === 'downloading' || phase === 'verifying') {
    mkdirSync(join(layout.root, '.downloads'), { recursive: true });
    writeFileSync(layout.downloadFile('web', '2.0.0'), 'partial bytes');
  }
  if (phase === 'installing') {
    // Half unpacked (a staging dir and a torn version dir) and `current` already switched.
    mkdirSync(join(layout.root, 'web', '.staging-2.0.0-999'), { recursive: true });
    mkdirSync(layout.versionDir('web', '2.0.0'), { recursive: true });
    writeFileSync(join(layout.versionDir('web', '2.0.0'), 'web-serv'), 'torn');
    layout.switchCurrent('web', '2.0.0');
  }
  if (phase === 'assessing') {
    await layout.unpack('web', '2.0.0', readArchive(v2));
    layout.switchCurrent('web', '2.0.0');
  }
  const record: InstallRecord = {
    component: 'web',
    version: '2.0.0',
    previous_version: '1.0.0',
    kind,
    artifact_id: v2.artifact_id,
    sha256: v2.sha256,
    rollback: false,
    phase,
    interrupted: options.interrupted ?? 0,
    ...(options.reverting ? { reverting: options.reverting } : {}),
    updated_at: new Date().toISOString(),
  };
  const journal = readJournal(layout.journalFile);
  writeJournal(layout.journalFile, { ...journal, installs: { web: record } });
  return { dir, v2, restarted: reconciler(dir, server).r };
}

function readArchive(desired: DesiredComponent): string {
  return server.files.get(desired.url)!;
}

describe('restart after kill -9 during an install', () => {
  for (const phase of ['downloading', 'verifying'] as const) {
    it(`${phase}: starts again cleanly and ends done`, async () => {
      const { restarted, v2 } = await crashedIn(phase);
      await restarted.reconcile(); // no desired state yet: nothing was switched, nothing to undo
      expect(restarted.reports()).toMatchObject([{ phase }]);
      expect(restarted.layout.currentVersion('web')).toBe('1.0.0');
      await restarted.reconcile({ web: v2 });
      expect(restarted.reports()).toMatchObject([{ version: '2.0.0', phase: 'done' }]);
      expect(restarted.layout.currentVersion('web')).toBe('2.0.0');
      expect(existsSync(restarted.layout.downloadFile('web', '2.0.0'))).toBe(false);
    });
  }

  it('installing: reverts to the previous version before any desired state arrives, and does not retry', async () => {
    const { restarted, v2 } = await crashedIn('installing');
    await restarted.reconcile();
    expect(restarted.layout.currentVersion('web')).toBe('1.0.0');
    expect(readFileSync(join(restarted.layout.currentLink('web'), 'web-server'), 'utf8')).toBe('v1');
    expect(restarted.installedVersions()).toEqual({ web: '1.0.0' });
    expect(restarted.reports()).toMatchObject([{ phase: 'reverted', reason: expect.stringContaining('restarted while installing 2.0.0') }]);
    expect(existsSync(join(restarted.layout.root, 'web', '.staging-2.0.0-999'))).toBe(false);
    await restarted.reconcile({ web: v2 });
    expect(restarted.reports()).toMatchObject([{ phase: 'reverted' }]);
  });

  it('installing a script: its rollback runs', async () => {
    const { restarted } = await crashedIn('installing', { kind: 'script' });
    writeFileSync(join(restarted.layout.versionDir('web', '2.0.0'), 'rollback'), '#!/bin/sh\ntouch rolled-back\n', { mode: 0o755 });
    await restarted.reconcile();
    expect(existsSync(join(restarted.layout.versionDir('web', '2.0.0'), 'rolled-back'))).toBe(true);
    expect(restarted.layout.currentVersion('web')).toBe('1.0.0');
    expect(restarted.reports()).toMatchObject([{ phase: 'reverted' }]);
  });

  it('assessing a healthy version: the assessment runs again and ends done', async () => {
    const { restarted } = await crashedIn('assessing');
    await restarted.reconcile();
    expect(restarted.reports()).toMatchObject([{ version: '2.0.0', phase: 'done' }]);
    expect(restarted.installedVersions()).toEqual({ web: '2.0.0' });
    expect(restarted.layout.currentVersion('web')).toBe('2.0.0');
  });

  it('assessing a broken version: the assessment runs again and reverts', async () => {
    const { restarted } = await crashedIn('assessing', { health: FAIL });
    await restarted.reconcile();
    expect(restarted.reports()).toMatchObject([{ phase: 'reverted', reason: 'health failed (exit code 1): still broken' }]);
    expect(restarted.layout.currentVersion('web')).toBe('1.0.0');
  });

  it('assessing, for the third time in a row: reverted without another try', async () => {
    // The health check would pass, but the agent keeps dying while assessing this version.
    const { restarted } = await crashedIn('assessing', { interrupted: 2 });
    await restarted.reconcile();
    expect(restarted.reports()).toMatchObject([{ phase: 'reverted', reason: '2.0.0 crashed 3 times in a row during assessment' }]);
    expect(restarted.installedVersions()).toEqual({ web: '1.0.0' });
    expect(restarted.layout.currentVersion('web')).toBe('1.0.0');
  });

  it('in the middle of a revert: the revert is finished', async () => {
    const { restarted } = await crashedIn('assessing', { reverting: 'health failed (exit code 1)' });
    await restarted.reconcile();
    expect(restarted.reports()).toMatchObject([{ phase: 'reverted', reason: 'health failed (exit code 1)' }]);
    expect(restarted.layout.currentVersion('web')).toBe('1.0.0');
  });

  it('the journal is never torn: a stale temp file from a killed write is ignored', async () => {
    const { dir, restarted } = await crashedIn('assessing');
    writeFileSync(join(dir, 'components', 'journal.json.12345.tmp'), '{"installed": {"web": "9.9');
    await restarted.reconcile();
    expect(readJournal(join(dir, 'components', 'journal.json')).installed).toEqual({ web: '2.0.0' });
  });
});
