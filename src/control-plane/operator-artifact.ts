// An `operator` artifact (DESIGN.md §11): a .tar.gz holding one operator build, drydock.mjs,
// and optionally operator.env, the settings that belong to that version (the node's own
// settings stay on the node). Each version dir on a node keeps its own env file, so returning to
// the previous version restores the previous settings.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { c as tarCreate } from 'tar';

export const OPERATOR_BUNDLE_FILE = 'drydock.mjs';
export const OPERATOR_ENV_FILE = 'operator.env';

/** scripts/build.mjs writes the version as this one line at the top of the bundle. */
export const VERSION_LINE = /^const __drydock_version = "([^"\n]*)";$/m;

/** The version a built bundle reports (its version line), or undefined for a file that is not one. */
export function readBundleVersion(bundle: string): string | undefined {
  const head = readFileSync(bundle, 'utf8').slice(0, 4096);
  return VERSION_LINE.exec(head)?.[1];
}

/** Packs `bundle` (and `envText` as operator.env) into the artifact at `out`. */
export async function packOperatorArtifact(bundle: string, out: string, envText?: string): Promise<void> {
  const staging = mkdtempSync(join(tmpdir(), 'drydock-operator-artifact-'));
  try {
    copyFileSync(bundle, join(staging, OPERATOR_BUNDLE_FILE));
    const files = [OPERATOR_BUNDLE_FILE];
    if (envText !== undefined) {
      writeFileSync(join(staging, OPERATOR_ENV_FILE), envText);
      files.push(OPERATOR_ENV_FILE);
    }
    await tarCreate({ gzip: true, file: out, cwd: staging, portable: true }, files);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
