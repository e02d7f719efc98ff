import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { x as untar } from 'tar';
import { OPERATOR_BUNDLE_FILE, readBundleVersion } from '../../control-plane/operator-artifact.js';
import type { ComponentLayout } from './layout.js';
import { OPERATOR_COMPONENT } from './operator-replica.js';

/**
 * Puts the first operator build on a control-plane node (`--operator-bootstrap`): the artifact
 * is unpacked as the version its bundle reports and `current` points at it. Later versions
 * arrive as signed artifacts through rollouts; this one is trusted because a person put it here.
 */
export async function installBootstrapOperator(layout: ComponentLayout, artifact: string): Promise<string> {
  const peek = mkdtempSync(join(tmpdir(), 'drydock-operator-bootstrap-'));
  let version: string | undefined;
  try {
    await untar({ file: artifact, cwd: peek, strict: true, filter: (path) => path.replace(/^\.\//, '') === OPERATOR_BUNDLE_FILE });
    const bundle = join(peek, OPERATOR_BUNDLE_FILE);
    if (!existsSync(bundle)) throw new Error(`${artifact} is not an operator artifact: it has no ${OPERATOR_BUNDLE_FILE}`);
    version = readBundleVersion(bundle);
  } finally {
    rmSync(peek, { recursive: true, force: true });
  }
  if (!version) throw new Error(`${artifact}: its ${OPERATOR_BUNDLE_FILE} has no version line (build it with npm run build)`);
  await layout.unpack(OPERATOR_COMPONENT, version, artifact);
  layout.switchCurrent(OPERATOR_COMPONENT, version);
  return version;
}
