import { createHash } from 'node:crypto';
import { blobUrl, MANIFEST_MEDIA_TYPES, manifestUrl, type OciRef, singleLayer } from '../../domain/oci-ref.js';
import { type Downloaded, downloadArtifact } from './download.js';

/** Nothing larger is fetched from a registry, whatever its manifest says (the operator's upload limit). */
const MAX_IMAGE_BYTES = 2 * 1024 ** 3;
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The registry's answer cannot be an os-image (an index, several layers): retrying will not help. */
export class OciRefusal extends Error {}

/**
 * Fetches the image blob an os-image reference names (the OCI distribution API: its manifest,
 * then its single layer's blob) into `file`, hashing it on the way like any download. The caller
 * compares the hash with the signed digest: what the registry serves is never trusted.
 */
export async function downloadOciImage(options: { ref: OciRef; file: string; timeoutMs?: number | undefined }): Promise<Downloaded> {
  const { ref } = options;
  const signal = AbortSignal.timeout(options.timeoutMs ?? 600_000);
  const url = manifestUrl(ref);
  const response = await fetch(url, { headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') }, signal });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`manifest ${url} answered HTTP ${response.status}`);
  }
  if (Number(response.headers.get('content-length') ?? 0) > MAX_MANIFEST_BYTES) {
    await response.body?.cancel();
    throw new OciRefusal(`the manifest at ${url} is larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  const bytes = Buffer.from(await response.arrayBuffer());
  if (ref.reference.startsWith('sha256:')) {
    // Pinned by digest: the manifest must be the one named.
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== ref.reference) throw new OciRefusal(`the registry's manifest hashes to ${actual}, not ${ref.reference}`);
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OciRefusal(`the manifest at ${url} is not JSON`);
  }
  const layer = singleLayer(manifest);
  if (!layer.ok) throw new OciRefusal(layer.reason);
  if (layer.size > MAX_IMAGE_BYTES) throw new OciRefusal(`the image layer is ${layer.size} bytes, more than ${MAX_IMAGE_BYTES}`);
  return downloadArtifact({ url: blobUrl(ref, layer.digest), file: options.file, maxBytes: layer.size, timeoutMs: options.timeoutMs });
}
