// Publishing a small signed artifact to a real operator and blessing it, as the operator tests
// need before a rollout: random bytes stand in for the build (the installing test nodes never
// unpack it), the signature is real.
import { createHash, randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import type { ApiClient } from './operator.js';

export class SignedPublisher {
  readonly keys = generateSigningKeyPair();

  constructor(
    private readonly operatorUrl: () => string,
    private readonly api: () => ApiClient,
  ) {}

  /** Publishes `component` `version` (kind binary), blesses it, and returns its id. */
  async publish(version: string, component = 'web'): Promise<string> {
    const bytes = randomBytes(32);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const signature = signArtifact(this.keys.privatePem, { component, version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component, version, kind: 'binary', signature, public_key: this.keys.publicPem });
    const response = await fetch(`${this.operatorUrl()}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    expect((await this.api().post(`/api/v1/artifacts/${id}/bless`)).status).toBe(200);
    return id;
  }
}
