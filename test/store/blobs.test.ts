import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { BlobTooLargeError, CHUNK_BYTES, commitBlob, discardStaged, findBlob, openBlobStream, stageBlob } from '../../src/store/blobs.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { startTestOperator } from '../support/operator.js';

/** Yields `data` in pieces of uneven sizes, as a socket would. */
async function* pieces(data: Buffer, sizes = [1, 1000, 70_000, 300_000, 12_345]): AsyncGenerator<Buffer> {
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const n = sizes[i % sizes.length] as number;
    yield data.subarray(offset, offset + n);
    offset += n;
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** `total` random bytes, 1 MiB at a time. */
async function* randomChunks(total: number): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < total; sent += 1024 * 1024) yield randomBytes(Math.min(1024 * 1024, total - sent));
}

function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const run = promisify(execFile);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const stagedRows = async (t: TestDb) => (await t.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM blob_chunks WHERE blob_key LIKE 'upload:%'`))[0]?.n;

describe(`store/blobs on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-blobs-'));
  });
  afterAll(async () => {
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores bytes in 256 KiB chunks under their sha256 and streams them back unchanged', async () => {
    const data = randomBytes(CHUNK_BYTES * 3 + 777);
    const staged = await stageBlob(t.db, pieces(data));
    expect(staged).toMatchObject({ sha256: sha256(data), size: data.length, chunks: 4 });
    expect(await t.db.transaction((tx) => commitBlob(tx, staged))).toEqual({ created: true });
    const rows = await t.db.query<{ seq: number; n: number }>('SELECT seq, length(data) AS n FROM blob_chunks WHERE blob_key = $1 ORDER BY seq', [staged.sha256]);
    expect(rows).toEqual([
      { seq: 0, n: CHUNK_BYTES },
      { seq: 1, n: CHUNK_BYTES },
      { seq: 2, n: CHUNK_BYTES },
      { seq: 3, n: 777 },
    ]);
    expect(await stagedRows(t)).toBe(0);
    const blob = await findBlob(t.db, staged.sha256);
    expect(blob).toEqual({ sha256: staged.sha256, size: data.length, chunks: 4 });
    expect((await readAll(openBlobStream(t.db, blob as NonNullable<typeof blob>))).equals(data)).toBe(true);
  });

  it('keeps one copy of identical bytes: a second upload is discarded', async () => {
    const data = randomBytes(1000);
    const first = await stageBlob(t.db, pieces(data));
    await t.db.transaction((tx) => commitBlob(tx, first));
    const second = await stageBlob(t.db, pieces(data));
    expect(await t.db.transaction((tx) => commitBlob(tx, second))).toEqual({ created: false });
    await discardStaged(t.db, second.stagingKey);
    expect(await stagedRows(t)).toBe(0);
    const [count] = await t.db.query<{ n: number }>('SELECT count(*)::int AS n FROM blob_chunks WHERE blob_key = $1', [first.sha256]);
    expect(count?.n).toBe(1);
  });

  it('refuses an upload over the limit and leaves no chunks behind', async () => {
    await expect(stageBlob(t.db, pieces(randomBytes(CHUNK_BYTES * 5)), { maxBytes: CHUNK_BYTES * 4 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await stagedRows(t)).toBe(0);
  });

  it('streams a 50 MB artifact through the real HTTP route without holding it in memory', async () => {
    const size = 50 * 1024 * 1024;
    const file = join(dir, 'big.bin');
    const hash = createHash('sha256');
    const out = createWriteStream(file);
    for (let written = 0; written < size; written += 1024 * 1024) {
      const block = randomBytes(1024 * 1024);
      hash.update(block);
      if (!out.write(block)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve) => out.end(() => resolve()));
    const digest = hash.digest('hex');

    let op: RunningOperator | undefined;
    try {
      op = await startTestOperator(t.db);
      // Warm up with an upload of the same size (other bytes): start-up allocations and the
      // embedded engine's buffer cache (WASM memory only grows) do not count. It streams too, so
      // it leaves no free JavaScript memory a buffering upload could quietly reuse.
      const warm = await fetch(`${op.url}/api/v1/artifacts?component=warmup&version=1.0.0&kind=binary`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: Readable.from(randomChunks(size)),
        duplex: 'half',
      } as unknown as RequestInit);
      expect(warm.status).toBe(201);

      // RSS is sampled right after a full collection: what counts is memory the upload holds, not
      // garbage V8 has not collected yet (which alone reaches ~60 MB before a lazy GC runs).
      const gc = exposeGc();
      gc();
      const baseline = process.memoryUsage().rss;
      let peak = baseline;
      const sampler = setInterval(() => {
        gc();
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 50);
      // The client is curl in its own process, so only the operator's memory is measured here.
      let upload: { stdout: string };
      try {
        upload = await run('curl', ['-sS', '--fail-with-body', '-X', 'POST', '-H', 'content-type: application/octet-stream', '-T', file,
          `${op.url}/api/v1/artifacts?component=big&version=1.0.0&kind=binary&sha256=${digest}`], { timeout: 120_000 });
      } finally {
        clearInterval(sampler);
      }
      const artifact = JSON.parse(upload.stdout) as { id: string; sha256: string; size: number };
      expect(artifact).toMatchObject({ sha256: digest, size });
      const growthMb = (peak - baseline) / 1024 / 1024;
      expect(growthMb, `RSS grew by ${growthMb.toFixed(1)} MB while uploading 50 MB`).toBeLessThan(40);

      const download = await fetch(`${op.url}/api/v1/artifacts/${artifact.id}/blob`);
      expect(download.status).toBe(200);
      expect(download.headers.get('content-length')).toBe(String(size));
      const back = createHash('sha256');
      for await (const part of download.body as unknown as AsyncIterable<Uint8Array>) back.update(part);
      expect(back.digest('hex')).toBe(digest);
    } finally {
      await op?.close();
    }
  });
});
