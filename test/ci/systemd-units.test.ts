// The units in deploy/systemd: `systemd-analyze verify` accepts them, `systemd-analyze security
// --offline` scores each (README: Install records the scores), and the sysusers.d entry creates
// the user they run as. verify checks that each ExecStart's program exists, so the programs the
// units name where a package puts them (/usr/bin/drydock, /usr/bin/node) are pointed at this
// checkout's launcher and this node in a copy; nothing else in the units is changed.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const unitsDir = join(root, 'deploy/systemd');
const units = readdirSync(unitsDir).filter((f) => f.endsWith('.service')).sort();

function run(command: string, args: string[]) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' } });
  if (result.error) throw new Error(`${command} is not installed (.ci/run installs the Debian package systemd): ${result.error.message}`);
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('systemd units', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-units-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('are the three units', () => {
    expect(units).toEqual(['drydock-agent.service', 'drydock-edge.service', 'drydock-operator.service']);
  });

  it('pass `systemd-analyze verify`', () => {
    const copies = units.map((unit) => {
      const text = readFileSync(join(unitsDir, unit), 'utf8')
        .replaceAll('ExecStart=/usr/bin/drydock ', `ExecStart=${join(root, 'bin/drydock.mjs')} `)
        .replaceAll('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
      writeFileSync(join(dir, unit), text);
      return join(dir, unit);
    });
    const result = run('systemd-analyze', ['verify', ...copies]);
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  it.each([
    ['drydock-operator.service', 4.0],
    ['drydock-edge.service', 4.0],
    // Hosts workloads: no private /tmp or devices, the network, a syscall deny list (see the unit).
    ['drydock-agent.service', 4.0],
  ])('%s scores at most %s ("OK") in `systemd-analyze security --offline`', (unit, bound) => {
    const result = run('systemd-analyze', ['security', '--offline=true', '--no-pager', join(unitsDir, unit)]);
    const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(result.output)?.[1]);
    console.log(`${unit}: ${/Overall exposure level.*/.exec(result.output)?.[0]}`);
    expect(score).toBeLessThanOrEqual(bound);
  });

  it('the sysusers.d entry creates the system user drydock, without a login shell', () => {
    const target = join(dir, 'root');
    mkdirSync(join(target, 'etc'), { recursive: true });
    copyFileSync(join(unitsDir, 'drydock.sysusers.conf'), join(dir, 'drydock.conf'));
    const result = run('systemd-sysusers', [`--root=${target}`, join(dir, 'drydock.conf')]);
    expect(result.code, result.output).toBe(0);
    const passwd = readFileSync(join(target, 'etc/passwd'), 'utf8');
    expect(passwd).toMatch(/^drydock:x:\d+:\d+:[^:]*:\/var\/lib\/drydock:\/usr\/sbin\/nologin$/m);
    for (const unit of units) expect(readFileSync(join(unitsDir, unit), 'utf8')).toMatch(/^User=drydock$/m);
  });

  it('each unit bounds its stop, and the ones with state keep it in a StateDirectory', () => {
    for (const unit of units) expect(readFileSync(join(unitsDir, unit), 'utf8'), unit).toMatch(/^TimeoutStopSec=\d+$/m);
    expect(readFileSync(join(unitsDir, 'drydock-operator.service'), 'utf8')).toMatch(/^StateDirectory=drydock\/operator$/m);
    expect(readFileSync(join(unitsDir, 'drydock-operator.service'), 'utf8')).toContain('--data-dir /var/lib/drydock/operator');
    expect(readFileSync(join(unitsDir, 'drydock-agent.service'), 'utf8')).toMatch(/^StateDirectory=drydock\/agent$/m);
  });
});
