import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readJournal } from '../../src/agent/components/journal.js';
import { BlobServer, buildArchive, publish, reconciler, stranger, tempDir } from './artifact-fixtures.js';

const OK = '#!/bin/sh\necho healthy\nexit 0\n';
const server = new BlobServer();
const dirs: string[] = [];

function dataDir(): string {
  const dir = tempDir('components');
  dirs.push(dir);
  return dir;
}

beforeAll(() => server.start());
afterAll(() => server.stop());
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A node that runs web 1.0.0, installed for real. */
async function nodeOnV1() {
  const dir = dataDir();
  const { r, changes } = reconciler(dir, server);
  const v1 = publish(server, await buildArchive(dir, { 'web-server': 'v1 binary', health: OK }), { component: 'web', version: '1.0.0' });
  await r.reconcile({ web: v1 });
  expect(r.layout.currentVersion('web')).toBe('1.0.0');
  changes.length = 0;
  return { dir, r, changes, v1 };
}

describe('binary installs', () => {
  it('installs a signed artifact, switches current, keeps the previous version, persists every phase before reporting it', async () => {
    const { dir, changes } = await nodeOnV1();
    const phasesOnDisk: string[] = [];
    const watched = reconciler(dir, server, {
      onPhaseChange: (report) => phasesOnDisk.push(readJournal(join(dir, 'components', 'journal.json')).installs[report.component]!.phase),
    });
    const v2 = publish(server, await buildArchive(dir, { 'web-server': 'v2 binary', health: OK }), { component: 'web', version: '2.0.0' });
    await watched.r.reconcile({ web: v2 });

    expect(phasesOnDisk).toEqual(['downloading', 'verifying', 'installing', 'assessing', 'done']);
    expect(watched.r.layout.currentVersion('web')).toBe('2.0.0');
    expect(readFileSync(join(dir, 'components', 'web', 'current', 'web-server'), 'utf8')).toBe('v2 binary');
    expect(readFileSync(join(dir, 'components', 'web', '1.0.0', 'web-server'), 'utf8')).toBe('v1 binary');
    expect(watched.r.installedVersions()).toEqual({ web: '2.0.0' });
    expect(watched.r.reports()).toMatchObject([{ component: 'web', version: '2.0.0', previous_version: '1.0.0', phase: 'done' }]);
    expect(readdirSync(join(dir, 'components', '.downloads'))).toEqual([]);
    expect(readFileSync(join(dir, 'components', 'logs', 'web-2.0.0.log'), 'utf8')).toContain('healthy');
    // Reconciling the same desired state again changes nothing.
    await watched.r.reconcile({ web: v2 });
    expect(phasesOnDisk).toHaveLength(5);
    expect(changes).toEqual([]); // only the second reconciler acted
  });

  it('installs an unsigned artifact only with allow-unsigned', async () => {
    const dir = dataDir();
    const unsigned = publish(server, await buildArchive(dir, { bin: 'x' }), { component: 'tool', version: '1.0.0', signer: null });
    const { r } = reconciler(dir, server, { trust: { trustedKeys: [], allowUnsigned: true } });
    await r.reconcile({ tool: unsigned });
    expect(r.layout.currentVersion('tool')).toBe('1.0.0');
    expect(r.reports()).toMatchObject([{ phase: 'done' }]);
  });

  type Refusal = Parameters<typeof publish>[2] & { trustNone?: boolean; tamper?: boolean; resign?: boolean };
  const refusals: [string, Refusal, string][] = [
    ['tampered bytes', { component: 'web', version: '2.0.0', tamper: true }, 'sha256 mismatch'],
    ['a signature over another version', { component: 'web', version: '2.0.0', resign: true }, 'bad signature'],
    ['a key the agent does not trust', { component: 'web', version: '2.0.0', signer: stranger.privatePem }, 'bad signature'],
    ['no signature', { component: 'web', version: '2.0.0', signer: null }, 'unsigned artifact'],
    ['no trusted key configured', { component: 'web', version: '2.0.0', trustNone: true }, 'no trusted key'],
    ['an unrequested downgrade', { component: 'web', version: '0.9.0' }, 'downgrade from 1.0.0 to 0.9.0'],
  ];

  it.each(refusals)('refuses %s: current unchanged, the reason reported', async (_name, s, reason) => {
    const { dir, r, changes } = await nodeOnV1();
    const archive = await buildArchive(dir, { 'web-server': 'evil', health: OK });
    let desired = publish(server, archive, s);
    if (s.tamper) writeFileSync(archive, Buffer.concat([readFileSync(archive), Buffer.from('x')]).subarray(1));
    if (s.resign) desired = { ...desired, signature: publish(server, archive, { ...s, version: '2.0.1' }).signature };
    const agent = s.trustNone ? reconciler(dir, server, { trust: { trustedKeys: [], allowUnsigned: false } }) : { r, changes };
    await agent.r.reconcile({ web: desired });

    expect(agent.r.layout.currentVersion('web')).toBe('1.0.0');
    expect(agent.r.installedVersions()).toEqual({ web: '1.0.0' });
    const [report] = agent.r.reports();
    expect(report).toMatchObject({ component: 'web', version: s.version, phase: 'failed' });
    expect(report!.reason).toContain(reason);
    expect(existsSync(join(dir, 'components', 'web', s.version))).toBe(false);
    expect(readdirSync(join(dir, 'components', '.downloads'))).toEqual([]);
    // Not retried while the desired state stays the same.
    const before = agent.changes.length;
    await agent.r.reconcile({ web: desired });
    expect(agent.changes.length).toBe(before);
  });

  it('installs a downgrade that is an explicit rollback', async () => {
    const { dir, r } = await nodeOnV1();
    const v2 = publish(server, await buildArchive(dir, { 'web-server': 'v2', health: OK }), { component: 'web', version: '2.0.0' });
    await r.reconcile({ web: v2 });
    const back = publish(server, await buildArchive(dir, { 'web-server': 'v1 again', health: OK }), { component: 'web', version: '1.0.0', rollback: true });
    await r.reconcile({ web: back });
    expect(r.layout.currentVersion('web')).toBe('1.0.0');
    expect(r.reports()).toMatchObject([{ version: '1.0.0', previous_version: '2.0.0', phase: 'done' }]);
  });

  it('reverts to the previous version when health fails, with its output in the reason', async () => {
    const { dir, r } = await nodeOnV1();
    const broken = publish(server, await buildArchive(dir, { 'web-server': 'v2', health: '#!/bin/sh\necho "port 8080 refused" >&2\nexit 3\n' }), {
      component: 'web',
      version: '2.0.0',
    });
    await r.reconcile({ web: broken });
    expect(r.layout.currentVersion('web')).toBe('1.0.0');
    expect(r.installedVersions()).toEqual({ web: '1.0.0' });
    const [report] = r.reports();
    expect(report).toMatchObject({ version: '2.0.0', previous_version: '1.0.0', phase: 'reverted' });
    expect(report!.reason).toBe('health failed (exit code 3): port 8080 refused');
    // The broken version is kept for inspection, but not retried.
    expect(existsSync(join(dir, 'components', 'web', '2.0.0'))).toBe(true);
  });

  it('reverts when health does not answer within its deadline', async () => {
    const { dir } = await nodeOnV1();
    const { r } = reconciler(dir, server, { healthDeadlineMs: 300 });
    const hung = publish(server, await buildArchive(dir, { health: '#!/bin/sh\nsleep 30\n' }), { component: 'web', version: '2.0.0' });
    // The reason proves the step was killed at its deadline, not waited out (it sleeps 30 s).
    await r.reconcile({ web: hung });
    expect(r.layout.currentVersion('web')).toBe('1.0.0');
    expect(r.reports()[0]!.reason).toContain('killed after its 300 ms deadline');
  });

  it('reports a download that fails and retries it later', async () => {
    const dir = dataDir();
    const desired = publish(server, await buildArchive(dir, { bin: 'x' }), { component: 'tool', version: '1.0.0' });
    let now = new Date('2024-05-01T12:00:00Z');
    const { r } = reconciler(dir, server, { clock: () => now, downloadRetryMs: 10_000 });
    await r.reconcile({ tool: { ...desired, url: '/nowhere' } });
    expect(r.reports()).toMatchObject([{ phase: 'failed', reason: expect.stringContaining('HTTP 404') }]);
    now = new Date('2024-05-01T12:00:20Z');
    await r.reconcile({ tool: desired });
    expect(r.reports()).toMatchObject([{ phase: 'done' }]);
  });

  it('refuses the agent kind until the supervisor exists', async () => {
    const dir = dataDir();
    const desired = publish(server, await buildArchive(dir, { 'drydock.mjs': '' }), { component: 'node-agent', version: '9.0.0', kind: 'agent' });
    const { r } = reconciler(dir, server, { builtIn: { 'node-agent': '0.1.0' } });
    await r.reconcile({ 'node-agent': desired });
    expect(r.installedVersions()).toEqual({ 'node-agent': '0.1.0' });
    expect(r.reports()).toMatchObject([{ phase: 'failed', reason: expect.stringContaining('supervisor') }]);
  });
});

describe('script installs', () => {
  const ENV_DUMP = 'env | grep ^DRYDOCK_ | sort';
  const script = (health: string) => ({
    install: `#!/bin/sh\n${ENV_DUMP} > installed.env\necho installing $DRYDOCK_VERSION\n`,
    health,
    rollback: `#!/bin/sh\n${ENV_DUMP} > rolled-back.env\necho rolling back\n`,
  });

  it('runs install and health with the DRYDOCK_* environment', async () => {
    const dir = dataDir();
    const { r } = reconciler(dir, server);
    await r.reconcile({ nginx: publish(server, await buildArchive(dir, script(OK)), { component: 'nginx', version: '1.24.0', kind: 'script' }) });
    await r.reconcile({ nginx: publish(server, await buildArchive(dir, script(OK)), { component: 'nginx', version: '1.26.0', kind: 'script' }) });
    const env = readFileSync(join(dir, 'components', 'nginx', '1.26.0', 'installed.env'), 'utf8');
    expect(env).toContain('DRYDOCK_COMPONENT=nginx\n');
    expect(env).toContain('DRYDOCK_VERSION=1.26.0\n');
    expect(env).toContain('DRYDOCK_PREVIOUS_VERSION=1.24.0\n');
    expect(env).toContain('DRYDOCK_NODE_ID=node-7\n');
    expect(r.installedVersions()).toEqual({ nginx: '1.26.0' });
    expect(r.layout.currentVersion('nginx')).toBe('1.26.0');
    expect(readFileSync(join(dir, 'components', 'logs', 'nginx-1.26.0.log'), 'utf8')).toContain('installing 1.26.0');
    expect(existsSync(join(dir, 'components', 'nginx', '1.26.0', 'rolled-back.env'))).toBe(false);
  });

  it('runs rollback and reports reverted when health fails', async () => {
    const dir = dataDir();
    const { r } = reconciler(dir, server);
    await r.reconcile({ nginx: publish(server, await buildArchive(dir, script(OK)), { component: 'nginx', version: '1.24.0', kind: 'script' }) });
    const bad = script('#!/bin/sh\necho "502 from upstream"\nexit 1\n');
    await r.reconcile({ nginx: publish(server, await buildArchive(dir, bad), { component: 'nginx', version: '1.26.0', kind: 'script' }) });
    expect(readFileSync(join(dir, 'components', 'nginx', '1.26.0', 'rolled-back.env'), 'utf8')).toContain('DRYDOCK_PREVIOUS_VERSION=1.24.0\n');
    expect(r.installedVersions()).toEqual({ nginx: '1.24.0' });
    expect(r.layout.currentVersion('nginx')).toBe('1.24.0');
    expect(r.reports()).toMatchObject([{ version: '1.26.0', phase: 'reverted', reason: 'health failed (exit code 1): 502 from upstream' }]);
  });

  it('runs rollback when install itself fails', async () => {
    const dir = dataDir();
    const { r } = reconciler(dir, server);
    const files = { ...script(OK), install: '#!/bin/sh\necho "disk full"\nexit 2\n' };
    await r.reconcile({ nginx: publish(server, await buildArchive(dir, files), { component: 'nginx', version: '1.26.0', kind: 'script' }) });
    expect(existsSync(join(dir, 'components', 'nginx', '1.26.0', 'rolled-back.env'))).toBe(true);
    expect(r.installedVersions()).toEqual({});
    expect(r.layout.currentVersion('nginx')).toBeNull();
    expect(r.reports()).toMatchObject([{ phase: 'reverted', reason: 'install failed (exit code 2): disk full' }]);
  });
});
