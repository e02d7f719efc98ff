// Content-addressed blobs in Postgres, written and read chunk by chunk: an artifact never sits
// whole in an operator's memory, and every replica can serve it.
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Db } from './db.js';

/** 256 KiB: small enough to keep memory flat, large enough that a 50 MB file is 200 rows. */
export const CHUNK_BYTES = 256 * 1024;
/** Chunks per INSERT: one round trip per MiB instead of one per chunk. */
const CHUNKS_PER_WRITE = 4;

export interface StagedBlob {
  /** Where the chunks are until `commitBlob` files them under the digest. */
  stagingKey: string;
  sha256: string;
  size: number;
  chunks: number;
}

export class BlobTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`the upload exceeds ${limit} bytes`);
  }
}

async function writeChunks(db: Db, key: string, firstSeq: number, chunks: readonly Buffer[]): Promise<void> {
  if (chunks.length === 0) return;
  // One bytea parameter per chunk, not a bytea[]: a Buffer parameter goes over the wire as it
  // is, while an array is first spelled out as hex text (three copies of every byte).
  const rows = chunks.map((_, i) => `($1, $${2 * i + 2}::int, $${2 * i + 3}::bytea)`).join(', ');
  await db.query(
    `INSERT INTO blob_chunks (blob_key, seq, data) VALUES ${rows}`,
    [key, ...chunks.flatMap((chunk, i) => [firstSeq + i, chunk])],
  );
}

/**
 * Streams `source` into staged chunks, hashing as it goes. Awaiting each write pauses the
 * source, so memory holds at most one batch of chunks. On failure the staged chunks are removed.
 */
export async function stageBlob(db: Db, source: AsyncIterable<Buffer | Uint8Array>, options: { maxBytes?: number } = {}): Promise<StagedBlob> {
  const stagingKey = `upload:${randomUUID()}`;
  const hash = createHash('sha256');
  let size = 0;
  let seq = 0;
  let batch: Buffer[] = [];
  // The driver has copied a batch onto the wire once its INSERT resolved, so its buffers are
  // reused: an upload allocates a few chunks, not one per 256 KiB of the file.
  const spare: Buffer[] = [];
  let current: Buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  let filled = 0;
  try {
    for await (const piece of source) {
      const bytes = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      size += bytes.length;
      if (options.maxBytes !== undefined && size > options.maxBytes) throw new BlobTooLargeError(options.maxBytes);
      hash.update(bytes);
      let offset = 0;
      while (offset < bytes.length) {
        const n = bytes.copy(current, filled, offset);
        filled += n;
        offset += n;
        if (filled === CHUNK_BYTES) {
          batch.push(current);
          current = spare.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES);
          filled = 0;
          if (batch.length === CHUNKS_PER_WRITE) {
            await writeChunks(db, stagingKey, seq, batch);
            seq += batch.length;
            spare.push(...batch);
            batch = [];
          }
        }
      }
    }
    if (filled > 0) batch.push(current.subarray(0, filled));
    await writeChunks(db, stagingKey, seq, batch);
    seq += batch.length;
    return { stagingKey, sha256: hash.digest('hex'), size, chunks: seq };
  } catch (error) {
    await discardStaged(db, stagingKey).catch(() => {});
    throw error;
  }
}

/**
 * Files staged chunks under their digest, inside the caller's transaction. When the same bytes
 * are stored already, the existing blob is kept and the staged copy is left for `discardStaged`.
 */
export async function commitBlob(tx: Db, staged: StagedBlob): Promise<{ created: boolean }> {
  const inserted = await tx.query(
    'INSERT INTO blobs (sha256, size, chunks) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING RETURNING sha256',
    [staged.sha256, staged.size, staged.chunks],
  );
  if (inserted.length === 0) return { created: false };
  // Renaming the key keeps the chunk data where it is (Postgres reuses an unchanged TOAST value).
  await tx.query('UPDATE blob_chunks SET blob_key = $2 WHERE blob_key = $1', [staged.stagingKey, staged.sha256]);
  return { created: true };
}

/** Removes what is left of a staged upload (nothing once `commitBlob` filed it). */
export async function discardStaged(db: Db, stagingKey: string): Promise<void> {
  await db.query('DELETE FROM blob_chunks WHERE blob_key = $1', [stagingKey]);
}

/** Removes staged chunks of uploads that died with their operator, older than `olderThanMs`. */
export async function sweepAbandonedUploads(db: Db, olderThanMs: number): Promise<number> {
  const rows = await db.query(
    `DELETE FROM blob_chunks WHERE blob_key LIKE 'upload:%' AND written_at < now() - make_interval(secs => $1::double precision / 1000)
     RETURNING 1`,
    [olderThanMs],
  );
  return rows.length;
}

export async function findBlob(db: Db, sha256: string): Promise<{ sha256: string; size: number; chunks: number } | undefined> {
  const [row] = await db.query<{ sha256: string; size: string; chunks: number }>('SELECT sha256, size, chunks FROM blobs WHERE sha256 = $1', [sha256]);
  return row && { sha256: row.sha256, size: Number(row.size), chunks: row.chunks };
}

/** A Readable of the blob's bytes that fetches one chunk per read, so a slow client holds little memory. */
export function openBlobStream(db: Db, blob: { sha256: string; chunks: number }): Readable {
  let seq = 0;
  return new Readable({
    // One chunk in flight at a time: the stream asks again only when the consumer drained it.
    highWaterMark: 1,
    objectMode: false,
    read() {
      if (seq >= blob.chunks) {
        this.push(null);
        return;
      }
      const wanted = seq++;
      db.query<{ data: Uint8Array }>('SELECT data FROM blob_chunks WHERE blob_key = $1 AND seq = $2', [blob.sha256, wanted]).then(
        ([row]) => {
          if (!row) this.destroy(new Error(`blob ${blob.sha256} is missing chunk ${wanted}`));
          else this.push(Buffer.isBuffer(row.data) ? row.data : Buffer.from(row.data.buffer, row.data.byteOffset, row.data.byteLength));
        },
        (error) => this.destroy(error as Error),
      );
    },
  });
}
