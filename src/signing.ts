import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';

/**
 * What an artifact signature covers: the bytes (by sha256) and what they claim to be, so a
 * signed binary cannot be re-labelled as another component or version.
 */
export function artifactSigningMessage(a: { component: string; version: string; kind: string; sha256: string }): Buffer {
  return Buffer.from(`drydock-artifact-v1\n${a.component}\n${a.version}\n${a.kind}\n${a.sha256}`, 'utf8');
}

export function generateSigningKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

export function signArtifact(privatePem: string, a: Parameters<typeof artifactSigningMessage>[0]): string {
  return sign(null, artifactSigningMessage(a), createPrivateKey(privatePem)).toString('base64');
}

export function publicKeyFromPem(pem: string): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`not an ed25519 public key (got ${key.asymmetricKeyType})`);
  return key;
}

/** Short, stable id of a public key (first 16 hex chars of the sha256 of its DER). */
export function keyId(key: KeyObject): string {
  return createHash('sha256').update(key.export({ format: 'der', type: 'spki' })).digest('hex').slice(0, 16);
}

/** True when any of the trusted keys made this signature. */
export function verifyArtifact(trusted: readonly KeyObject[], signature: string, a: Parameters<typeof artifactSigningMessage>[0]): boolean {
  const message = artifactSigningMessage(a);
  const bytes = Buffer.from(signature, 'base64');
  return trusted.some((key) => {
    try {
      return verify(null, message, key, bytes);
    } catch {
      return false;
    }
  });
}
