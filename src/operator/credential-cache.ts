import { createHash, timingSafeEqual } from 'node:crypto';
import type { Db } from '../store/db.js';
import { nodeCredentialHash } from '../store/nodes.js';

/** How long a digest read from the database (or confirmed by a heartbeat write) is trusted, by default. */
export const CREDENTIAL_CACHE_TTL_MS = 10_000;

export type CredentialCheck = 'ok' | 'invalid' | 'unknown-node';

export const credentialDigest = (presented: string | string[] | undefined): string =>
  createHash('sha256').update(typeof presented === 'string' ? presented : '').digest('hex');

/**
 * Node credential digests in memory, so a heartbeat costs no credential read (DESIGN.md §13).
 *
 * Why it stays right:
 * - This replica's own credential changes (registration, admin re-enroll) call `forget` after
 *   commit: the old credential is refused at once here.
 * - A heartbeat does not consult this map to refuse: it is written only if its digest matches
 *   the stored one (the check is in the batched UPDATE, writeHeartbeats), so a credential
 *   changed by any replica is refused at its next heartbeat, with no read, and a written
 *   heartbeat `confirm`s the entry.
 * - Long-polls and downloads trust an entry for at most `ttlMs` (default 10 s) since it was last
 *   confirmed by the database; that is the bound for a revocation made by another replica.
 *   Heartbeats every 2 s keep entries fresh, so those paths rarely read either.
 */
export class CredentialCache {
  private readonly entries = new Map<string, { digest: string | null; at: number }>();

  constructor(
    private readonly db: Db,
    private readonly ttlMs = CREDENTIAL_CACHE_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Checks `presented` for the node. Only a match is trusted from memory (for at most `ttlMs`);
   * a mismatch is always confirmed by a read, so a credential issued through another replica
   * is never refused here because of an old entry.
   */
  async check(nodeId: string, presented: string | string[] | undefined): Promise<CredentialCheck> {
    const given = credentialDigest(presented);
    const entry = this.entries.get(nodeId);
    if (entry && this.now() - entry.at <= this.ttlMs && matches(entry.digest, given)) return 'ok';
    const stored = await nodeCredentialHash(this.db, nodeId);
    if (stored === undefined) {
      this.entries.delete(nodeId);
      return 'unknown-node';
    }
    this.entries.set(nodeId, { digest: stored, at: this.now() });
    return matches(stored, given) ? 'ok' : 'invalid';
  }

  /** Whether memory alone (a fresh entry) says `presented` is the node's credential. */
  knows(nodeId: string, presented: string | string[] | undefined): boolean {
    const entry = this.entries.get(nodeId);
    return entry !== undefined && this.now() - entry.at <= this.ttlMs && matches(entry.digest, credentialDigest(presented));
  }

  /** The database just accepted `digest` for the node (a heartbeat written with it, a registration). */
  confirm(nodeId: string, digest: string): void {
    this.entries.set(nodeId, { digest, at: this.now() });
  }

  /** The node's credential changed or may have: the next check reads it. */
  forget(nodeId: string): void {
    this.entries.delete(nodeId);
  }

  get size(): number {
    return this.entries.size;
  }
}

function matches(stored: string | null, given: string): boolean {
  // null: the credential was voided by a re-enroll; nothing matches it.
  return stored !== null && stored.length === given.length && timingSafeEqual(Buffer.from(stored, 'hex'), Buffer.from(given, 'hex'));
}
