import { readFileSync } from 'node:fs';
import { signArtifact } from '../signing.js';

/** A built vm-image: its archive, the archive's sha256, and the name and version image.json gives it. */
export interface BuiltVmImage {
  tarPath: string;
  sha256: string;
  imageJson: { name: string; version: string };
}

/**
 * Signs a built vm-image with `keys` and uploads it to the operator as artifact kind `vm-image`
 * (the signing key's public half travels with it, as `drydock artifacts publish` sends it).
 * Returns `<component>@<version>`, what a `vm` workload's `image` names. Throws with the
 * operator's answer when it refuses.
 */
export async function publishVmImage(
  operatorUrl: string,
  image: BuiltVmImage,
  keys: { privatePem: string; publicPem: string },
  token?: string,
): Promise<string> {
  const { name, version } = image.imageJson;
  const query = new URLSearchParams({
    component: name,
    version,
    kind: 'vm-image',
    signature: signArtifact(keys.privatePem, { component: name, version, kind: 'vm-image', sha256: image.sha256 }),
    public_key: keys.publicPem,
  });
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers, body: new Uint8Array(readFileSync(image.tarPath)) });
  if (response.status !== 201) throw new Error(`publishing ${name}@${version} answered ${response.status}: ${await response.text()}`);
  return `${name}@${version}`;
}
