// CLI conventions against a real operator and agent: -o table|wide|json|yaml, component@version
// in `node show` and `-o wide`, exit codes and examples in --help, shell completion that works
// in a real bash, NO_COLOR.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { isAlive, type LocalFleet } from '../../src/demo/local-fleet.js';
import { formatAge } from '../../src/cli/output.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

describe('CLI conventions', () => {
  let fleet: LocalFleet;
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const result = spawnSync(process.execPath, [BUNDLE, '--operator', fleet.operatorUrl, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, ...env },
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  beforeAll(async () => {
    fleet = await startTestFleet('cli-conventions');
    fleet.startAgent('conv-node-1', 'eu-west');
    await fleet.waitForNodes(1);
  });
  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('-o json is --json; -o yaml is the same data as YAML', () => {
    const json = cli(['nodes', '--json']);
    const dashO = cli(['nodes', '-o', 'json']);
    expect(dashO.code).toBe(0);
    const fromJson = JSON.parse(json.stdout) as { hostname: string; region: string }[];
    expect(fromJson.map((n) => n.hostname)).toEqual(['conv-node-1']);
    expect((JSON.parse(dashO.stdout) as { hostname: string }[]).map((n) => n.hostname)).toEqual(['conv-node-1']);
    const yaml = cli(['nodes', '-o', 'yaml']);
    expect(yaml.code).toBe(0);
    expect((parseYaml(yaml.stdout) as { hostname: string; region: string }[])[0]).toMatchObject({ hostname: 'conv-node-1', region: 'eu-west' });
    // Also where the command prints one object, and with -o before the command.
    const show = cli(['-o', 'yaml', 'node', 'show', 'conv-node-1']);
    expect((parseYaml(show.stdout) as { hostname: string }).hostname).toBe('conv-node-1');
  });

  it('-o wide adds columns (components as component@version); node show prints the components', () => {
    const table = cli(['nodes']);
    const wide = cli(['nodes', '-o', 'wide']);
    expect(table.stdout.split('\n')[0]).not.toContain('COMPONENTS');
    expect(wide.stdout.split('\n')[0]).toContain('COMPONENTS');
    expect(wide.stdout.split('\n')[0]).toContain('CAPACITY');
    const show = cli(['node', 'show', 'conv-node-1']);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^components: (\S+@\S+( |$))*|^components: -$/m);
    expect(show.stdout).toContain('\ncomponents: ');
  });

  it('refuses an unknown -o format', () => {
    const bad = cli(['nodes', '-o', 'xml']);
    expect(bad.stderr).toContain('xml');
    expect(bad.code).toBe(1);
  });

  it('lists exit codes in --help, and examples in the main commands', () => {
    const root = cli(['--help']);
    expect(root.stdout).toContain('Exit codes:');
    for (const command of [['nodes'], ['node', 'drain'], ['deploy'], ['delete', 'deployment'], ['delete', 'node'], ['operator'], ['rollout', 'create'], ['rollout', 'watch']]) {
      const help = cli([...command, '--help']);
      expect(help.stdout, command.join(' ')).toContain('Examples:');
      expect(help.stdout, command.join(' ')).toContain('Exit codes:');
    }
  });

  it('`drydock completion bash` completes commands, subcommands and options in a real bash', () => {
    const script = join(mkdtempSync(join(tmpdir(), 'drydock-completion-')), 'drydock.bash');
    writeFileSync(script, cli(['completion', 'bash']).stdout);
    const complete = (words: string[]) => {
      const line = `source '${script}'; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _drydock; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const result = spawnSync('bash', ['-c', line], { encoding: 'utf8' });
      expect(result.stderr).toBe('');
      return result.stdout.trim().split('\n').filter(Boolean).sort();
    };
    expect(complete(['drydock', 'nod'])).toEqual(['node', 'nodes']);
    expect(complete(['drydock', 'node', 'dr'])).toEqual(['drain']);
    expect(complete(['drydock', 'node', 'drain', '--w'])).toEqual(['--wait']);
    expect(complete(['drydock', '--operator', 'http://x', 'rollout', 'wa'])).toEqual(['watch']);
    const zsh = cli(['completion', 'zsh']);
    expect(zsh.stdout.startsWith('#compdef drydock\n')).toBe(true);
    const fish = cli(['completion', 'fish']);
    expect(fish.stderr).toBe('error: no completion for shell "fish"; use bash or zsh\n');
    expect(fish.code).toBe(1);
    rmSync(dirname(script), { recursive: true, force: true });
  });

  it('AGE is the time since creation', () => {
    const now = Date.parse('2026-12-02T12:00:00Z');
    expect(formatAge('2026-12-02T11:59:15Z', now)).toBe('45s');
    expect(formatAge('2026-12-02T11:56:40Z', now)).toBe('3m20s');
    expect(formatAge('2026-12-02T09:55:00Z', now)).toBe('2h5m');
    expect(formatAge('2026-11-28T08:00:00Z', now)).toBe('4d4h');
    expect(formatAge(null, now)).toBe('-');
  });

  it('artifacts are addressable as component@version, through the CLI and the API', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drydock-artifact-'));
    writeFileSync(join(dir, 'tool.tar.gz'), 'not really a tarball, only bytes to publish');
    const published = cli(['artifacts', 'publish', '--component', 'conv-tool', '--version', '1.4.0', '--kind', 'binary', '--file', join(dir, 'tool.tar.gz'), '--json']);
    expect(published.code, published.stderr).toBe(0);
    const id = (JSON.parse(published.stdout) as { id: string }).id;
    const shown = cli(['artifacts', 'show', 'conv-tool@1.4.0', '-o', 'json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, component: 'conv-tool', version: '1.4.0', lifecycle: 'draft' });
    const viaApi = await fetch(`${fleet.operatorUrl}/api/v1/artifacts/conv-tool@1.4.0`);
    expect(((await viaApi.json()) as { id: string }).id).toBe(id);
    const unknown = cli(['artifacts', 'show', 'conv-tool@9.9.9']);
    expect(unknown.stderr).toMatch(/\[ARTIFACT_NOT_FOUND\]\n$/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('errors keep the `error: … [CODE]` shape', () => {
    const missing = cli(['node', 'show', 'no-such-node']);
    expect(missing.stderr).toMatch(/^error: no node "no-such-node"; .* \[NODE_NOT_FOUND\]\n$/);
    expect(missing.code).toBe(1);
  });
});
