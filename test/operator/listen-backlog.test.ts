// The operator's listen queue holds a fleet's reconnect storm (after a failover, thousands of
// agents connect at once). With Node's default of 511 the kernel dropped handshakes under
// bench:heartbeats-http with 3,000 sockets (6,351 ListenOverflows in one 30 s run, 0 after) and
// each dropped agent retried a second later, then two: heartbeats the operator never knew were sent.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { startTestOperator } from '../support/operator.js';

describe(`the operator's listen queue on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('listens with a backlog of 4,096 (or the kernel’s cap, net.core.somaxconn), not Node’s 511', () => {
    const port = new URL(op.url).port;
    // `ss -ltn` shows a listening socket's backlog as its Send-Q.
    const line = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim();
    const [state, , backlog] = line.split(/\s+/);
    expect(state).toBe('LISTEN');
    const cap = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
    expect(Number(backlog)).toBe(Math.min(4096, cap));
  });
});
