import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create as createTar } from 'tar';

/** What an image's one boot check (`required.d/10-boot`) does: exit 0, print `failure` and exit 1, or run a script of its own. */
export type BootCheck = { pass: true } | { fail: string } | { script: string };

/**
 * Writes an `os-image` artifact as agent/components/os-image-slots.ts reads it: a .tar.gz holding
 * a `version` file and one `required.d` boot check. Returns the file (`<dir>/os-<version>.tar.gz`).
 * Used by `drydock demo --scenario os-image` and by the end-to-end tests of reboot-class rollouts.
 */
export async function writeOsImage(dir: string, version: string, check: BootCheck = { pass: true }): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const src = mkdtempSync(join(dir, `os-${version}-`));
  writeFileSync(join(src, 'version'), `${version}\n`);
  mkdirSync(join(src, 'required.d'));
  const script = 'script' in check ? check.script : `#!/bin/sh\n${'pass' in check ? 'exit 0\n' : `echo ${shellQuote(check.fail)} >&2\nexit 1\n`}`;
  writeFileSync(join(src, 'required.d', '10-boot'), script);
  chmodSync(join(src, 'required.d', '10-boot'), 0o755);
  const file = join(dir, `os-${version}.tar.gz`);
  await createTar({ gzip: true, file, cwd: src, portable: true }, readdirSync(src));
  rmSync(src, { recursive: true, force: true });
  return file;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}
