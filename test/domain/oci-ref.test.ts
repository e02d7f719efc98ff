import { describe, expect, it } from 'vitest';
import { blobUrl, manifestUrl, parseOciRef, singleLayer } from '../../src/domain/oci-ref.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('OCI references of os-image artifacts', () => {
  it('parses a tag and a digest reference, with and without a port, into distribution API URLs', () => {
    const tagged = parseOciRef('oci://127.0.0.1:5000/fleet/os:2.0.0');
    expect(tagged).toEqual({ ok: true, ref: { registry: '127.0.0.1:5000', repository: 'fleet/os', reference: '2.0.0' } });
    if (!tagged.ok) return;
    expect(manifestUrl(tagged.ref)).toBe('http://127.0.0.1:5000/v2/fleet/os/manifests/2.0.0');
    expect(blobUrl(tagged.ref, DIGEST)).toBe(`http://127.0.0.1:5000/v2/fleet/os/blobs/sha256%3A${'ab'.repeat(32)}`);
    expect(parseOciRef(`oci://registry.example/os@${DIGEST}`)).toEqual({ ok: true, ref: { registry: 'registry.example', repository: 'os', reference: DIGEST } });
    expect(parseOciRef('oci://localhost/os_image-x.y:latest')).toMatchObject({ ok: true });
  });

  it('refuses anything else with a reason', () => {
    for (const text of [
      'registry/os:1',
      'oci://',
      'oci:///os:1',
      'oci://host/os',
      'oci://host/OS:1',
      'oci://host/os:',
      'oci://host/os:bad/tag',
      'oci://host:99999/os:1',
      'oci://ho st/os:1',
      'oci://host/os@sha256:abc',
      `oci://host/os@md5:${'a'.repeat(32)}`,
      `oci://host/${'a'.repeat(600)}:1`,
    ]) {
      const parsed = parseOciRef(text);
      expect({ text, ok: parsed.ok }).toEqual({ text, ok: false });
      if (!parsed.ok) expect(parsed.reason).toMatch(/is not an OCI reference/);
    }
  });

  it('takes the single layer of an image manifest, and refuses an index or several layers', () => {
    const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: DIGEST, size: 1234 };
    expect(singleLayer({ schemaVersion: 2, layers: [layer] })).toEqual({ ok: true, digest: DIGEST, size: 1234 });
    expect(singleLayer({ schemaVersion: 2, manifests: [] })).toMatchObject({ ok: false, reason: expect.stringMatching(/index/) });
    expect(singleLayer({ schemaVersion: 2, layers: [layer, layer] })).toMatchObject({ ok: false, reason: expect.stringMatching(/2 layers/) });
    expect(singleLayer({ schemaVersion: 2, layers: [{ ...layer, digest: 'sha256:nope' }] })).toMatchObject({ ok: false });
    expect(singleLayer({ schemaVersion: 2, layers: [{ ...layer, size: 0 }] })).toMatchObject({ ok: false });
    expect(singleLayer('[]')).toMatchObject({ ok: false });
  });
});
