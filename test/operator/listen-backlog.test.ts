// The operator's listen queue holds a fleet's reconnect storm (after a failover, thousands of
// agents connect at once). With Node's default of 511 the kernel dropped handshakes under
// bench:heartbeats-http with 3,000 sockets (6,351 ListenOverflows in one 30 s run, 0 after) and
// each dropped agent retried a second later, then two: heartbeats the operator never knew were sent.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeRouter } from '../../src/edge/router.js';
import { createLogger } from '../../src/logging.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { startTestOperator } from '../support/operator.js';

describe(`the operator's listen queue on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let edge: EdgeRouter;
  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    edge = new EdgeRouter({ listen: '127.0.0.1:0', operatorUrls: [op.url], log: createLogger('test-edge', { level: 'silent' }) });
    await edge.start();
  });
  afterAll(async () => {
    await edge?.stop();
    await op?.close();
    await t?.cleanup();
  });

  /** A listening socket's backlog, as `ss -ltn` shows it (its Send-Q). */
  const backlogOf = (url: string) => {
    const line = execFileSync('ss', ['-Hltn', `sport = :${new URL(url).port}`], { encoding: 'utf8' }).trim();
    const [state, , backlog] = line.split(/\s+/);
    expect(state).toBe('LISTEN');
    return Number(backlog);
  };
  const cap = () => Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));

  it('the operator listens with a backlog of 4,096 (or the kernel’s cap, net.core.somaxconn), not Node’s 511', () => {
    expect(backlogOf(op.url)).toBe(Math.min(4096, cap()));
  });

  it('so does the edge in front of the replicas', () => {
    expect(backlogOf(edge.url)).toBe(Math.min(4096, cap()));
  });
});
