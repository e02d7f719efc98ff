// A large artifact upload at loopback speed is not cut off by the body-rate floor. The header
// and whole-request bounds stay at their defaults here: with a sub-second header bound (400 ms)
// this upload got 408 REQUEST_TIMEOUT on the embedded engine, whose chunk writes hold the event
// loop, although its headers had arrived at once (a real operator process with a 2 s header
// bound takes a 50 MB upload at 8 MB/s, 6.4 s, fine). The slow-header bound itself is tested in
// server-timeouts.test.ts.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_LIMIT_DEFAULTS } from '../../src/operator/http-limits.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { startTestOperator } from '../support/operator.js';

describe(`operator large uploads under a body-rate floor on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let uploads: RunningOperator;

  beforeAll(async () => {
    t = await createTestDb();
    // A tight body-rate window (16 KiB per 400 ms); the client can send no faster than the
    // database stores the chunks, and that must not count against it.
    uploads = await startTestOperator(t.db, { http: { ...HTTP_LIMIT_DEFAULTS, bodyMinBytes: 16 * 1024, bodyRateWindowMs: 400 } });
  });
  afterAll(async () => {
    await uploads?.close();
    await t?.cleanup();
  });

  it('accepts a 50 MB upload at loopback speed', async () => {
    const bytes = randomBytes(50 * 1024 * 1024);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const response = await fetch(`${uploads.url}/api/v1/artifacts?component=big&version=1.0.0&kind=binary&sha256=${sha256}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(bytes),
    });
    expect(response.status, await response.clone().text()).toBe(201);
    expect(await response.json()).toMatchObject({ component: 'big', sha256, size: bytes.length });
    const stored = await t.db.query<{ size: string }>('SELECT size FROM artifacts WHERE component = $1', ['big']);
    expect(stored.map((r) => Number(r.size))).toEqual([bytes.length]);
  });
});
