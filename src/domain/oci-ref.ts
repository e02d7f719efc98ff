// An os-image published by reference (issue 12, item 1): `oci://HOST[:PORT]/REPO:TAG` or
// `oci://HOST[:PORT]/REPO@sha256:HEX`, read by the OCI distribution API (GET /v2/REPO/manifests/
// REFERENCE, then the blob of its single layer). Pure: parsing and the URLs only.

export interface OciRef {
  /** `host` or `host:port`, as written. */
  registry: string;
  /** The repository path, e.g. `os` or `fleet/os` (lowercase, as the distribution spec allows). */
  repository: string;
  /** A tag (`2.0.0`) or a manifest digest (`sha256:…`): what GET …/manifests/ takes. */
  reference: string;
}

const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::(\d{1,5}))?$/;
// The distribution spec's repository name grammar.
const REPOSITORY = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The reference's parts, or why it is not one (a sentence a person can act on). */
export function parseOciRef(text: string): { ok: true; ref: OciRef } | { ok: false; reason: string } {
  const bad = (why: string) => ({ ok: false as const, reason: `"${text}" is not an OCI reference: ${why}; write oci://HOST[:PORT]/REPO:TAG or oci://HOST[:PORT]/REPO@sha256:DIGEST` });
  if (text.length > 512) return bad('longer than 512 characters');
  if (!text.startsWith('oci://')) return bad('it does not start with oci://');
  const rest = text.slice('oci://'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return bad('it names no registry host and repository');
  const registry = rest.slice(0, slash);
  const hostMatch = HOST.exec(registry);
  if (!hostMatch || (hostMatch[1] !== undefined && (Number(hostMatch[1]) < 1 || Number(hostMatch[1]) > 65535))) return bad(`"${registry}" is not a HOST or HOST:PORT`);
  const path = rest.slice(slash + 1);
  let repository: string;
  let reference: string;
  const at = path.indexOf('@');
  if (at >= 0) {
    repository = path.slice(0, at);
    reference = path.slice(at + 1);
    if (!DIGEST.test(reference)) return bad('the digest after @ is not sha256: and 64 lowercase hex digits');
  } else {
    const colon = path.lastIndexOf(':');
    if (colon < 0) return bad('it names no :TAG nor @sha256: digest');
    repository = path.slice(0, colon);
    reference = path.slice(colon + 1);
    if (!TAG.test(reference)) return bad(`"${reference}" is not a tag (letters, digits, _ . -, at most 128)`);
  }
  if (!REPOSITORY.test(repository)) return bad(`"${repository}" is not a repository name (lowercase letters, digits, separators, / between parts)`);
  return { ok: true, ref: { registry, repository, reference } };
}

/** The registry's base URL. Plain HTTP: only registries on a trusted network (loopback) for now. */
export function registryBaseUrl(ref: OciRef): string {
  return `http://${ref.registry}/v2`;
}

export function manifestUrl(ref: OciRef): string {
  return `${registryBaseUrl(ref)}/${ref.repository}/manifests/${encodeURIComponent(ref.reference)}`;
}

export function blobUrl(ref: OciRef, digest: string): string {
  return `${registryBaseUrl(ref)}/${ref.repository}/blobs/${encodeURIComponent(digest)}`;
}

/** What a registry may answer for a single image: OCI first, Docker's v2 schema 2 too. */
export const MANIFEST_MEDIA_TYPES = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'] as const;

/**
 * The digest and size of the image blob a manifest names: its one layer. Anything else (an
 * index of several platforms, no layer, several layers) is refused with the reason.
 */
export function singleLayer(manifest: unknown): { ok: true; digest: string; size: number } | { ok: false; reason: string } {
  if (typeof manifest !== 'object' || manifest === null) return { ok: false, reason: 'the manifest is not a JSON object' };
  const m = manifest as { mediaType?: unknown; manifests?: unknown; layers?: unknown };
  if (Array.isArray(m.manifests)) return { ok: false, reason: 'the reference names an index (several images); name one image manifest' };
  if (!Array.isArray(m.layers) || m.layers.length !== 1) {
    return { ok: false, reason: `the image manifest has ${Array.isArray(m.layers) ? m.layers.length : 'no'} layers; an os-image reference needs exactly one (the image file)` };
  }
  const layer = m.layers[0] as { digest?: unknown; size?: unknown };
  if (typeof layer.digest !== 'string' || !DIGEST.test(layer.digest)) return { ok: false, reason: 'the layer digest is not sha256: and 64 lowercase hex digits' };
  if (typeof layer.size !== 'number' || !Number.isSafeInteger(layer.size) || layer.size <= 0) return { ok: false, reason: 'the layer has no positive size' };
  return { ok: true, digest: layer.digest, size: layer.size };
}
