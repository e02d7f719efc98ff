import type { KeyObject } from 'node:crypto';
import type { DesiredComponent } from '../../domain/protocol.js';
import { verifyArtifact } from '../../signing.js';

export interface TrustPolicy {
  trustedKeys: readonly KeyObject[];
  /** Development only: accept artifacts without a signature (a present signature is still checked). */
  allowUnsigned: boolean;
}

/**
 * Why the downloaded artifact must not be installed, or undefined when it may. The reasons
 * start with stable words (`sha256 mismatch`, `unsigned artifact`, `no trusted key`,
 * `bad signature`) that people and scripts can match on.
 */
export function refusalReason(
  component: string,
  desired: Pick<DesiredComponent, 'version' | 'kind' | 'sha256' | 'signature'>,
  downloadedSha256: string,
  policy: TrustPolicy,
): string | undefined {
  if (downloadedSha256 !== desired.sha256.toLowerCase()) {
    return `sha256 mismatch: the artifact should be ${desired.sha256}, the downloaded bytes are ${downloadedSha256}`;
  }
  if (desired.signature === null) {
    return policy.allowUnsigned ? undefined : 'unsigned artifact: publish it signed, or run the agent with --allow-unsigned (development only)';
  }
  if (policy.trustedKeys.length === 0) {
    return policy.allowUnsigned ? undefined : 'no trusted key: start the agent with --trusted-key FILE to verify signatures';
  }
  const signed = { component, version: desired.version, kind: desired.kind, sha256: desired.sha256 };
  if (!verifyArtifact(policy.trustedKeys, desired.signature, signed)) {
    return `bad signature: no trusted key (${policy.trustedKeys.length} configured) signed ${component} ${desired.version}`;
  }
  return undefined;
}
