// A lost database connection fails the request it was serving, with a clean 503, and nothing
// else: the operator process lives, reconnects and serves again (issue 8, item 2). Losing a
// session is a server-engine behaviour, so this file always runs against the Postgres server,
// on a database of its own, whatever DRYDOCK_TEST_ENGINE says.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { isAlive, LocalFleet } from '../../src/demo/local-fleet.js';
import { type Db, isConnectionLost } from '../../src/store/db.js';
import { openDb } from '../../src/store/open.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, type ApiResponse, type ErrorBody, expectApiError, waitFor } from '../support/operator.js';
import { BUNDLE } from '../support/processes.js';
import { connectExpectingLoss, createServerDb, type ServerDb } from '../support/server-db.js';

/** The advisory lock rollout creation serializes on (src/operator/routes/rollouts.ts, "drol"). */
const ROLLOUT_CREATE_LOCK = 0x64726f6c;

const spec = (name: string) => ({ name, target: { component: 'web', version: '1.0.0' }, selector: { hostnames: ['nobody'] } });

/** The backend of `db` waiting on an advisory lock, once there is one. */
async function waitingBackend(server: ServerDb): Promise<number> {
  return waitFor('a backend waiting on the rollout lock', async () => {
    const rows = await server.admin<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
      [server.name],
    );
    return rows.length === 1 ? rows[0]?.pid : undefined;
  });
}

/** Holds the rollout-creation lock in an open transaction of its own session until released. */
async function holdRolloutLock(server: ServerDb): Promise<{ client: pg.Client; release(): Promise<void> }> {
  const client = await connectExpectingLoss(server.url);
  await client.query('BEGIN');
  await client.query('SELECT pg_advisory_xact_lock($1)', [ROLLOUT_CREATE_LOCK]);
  return {
    client,
    async release() {
      await client.query('ROLLBACK').catch(() => {});
      await client.end().catch(() => {});
    },
  };
}

describe('the real operator bundle on a Postgres server whose connections drop', () => {
  let server: ServerDb;
  let fleet: LocalFleet;
  let api: ApiClient;
  const operatorRunning = () => {
    const proc = fleet.processes.get('operator');
    return proc !== undefined && proc.child.exitCode === null && proc.child.signalCode === null && isAlive(proc.pid);
  };

  beforeAll(async () => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first (npm test does)`);
    server = await createServerDb('drydock_connloss');
    fleet = new LocalFleet({ bin: BUNDLE, dir: mkdtempSync(join(tmpdir(), 'drydock-connloss-')), removeDirOnStop: true });
    await fleet.startOperator(`127.0.0.1:${await freePort()}`, ['--database-url', server.url]);
    api = new ApiClient(fleet.operatorUrl);
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    await server?.drop();
  });

  it('a rollout creation whose waiting backend is terminated gets 503 DATABASE_UNAVAILABLE, 3 times of 3, and the operator keeps serving', async () => {
    for (let round = 1; round <= 3; round++) {
      const lock = await holdRolloutLock(server);
      try {
        const pending = api.post<ErrorBody>('/api/v1/rollouts', spec(`lost-connection-${round}`));
        const backend = await waitingBackend(server);
        expect(await server.admin('SELECT pg_terminate_backend($1) AS ok', [backend])).toEqual([{ ok: true }]);
        const error = expectApiError(await pending, 503, 'DATABASE_UNAVAILABLE');
        expect(error.message).toMatch(/database connection was lost/i);
        expect(error.message).toMatch(/retry/i);
      } finally {
        await lock.release();
      }
      expect(operatorRunning()).toBe(true);
      expect((await api.get<{ status: string }>('/health')).status).toBe(200);
      expect((await api.get<unknown[]>('/api/v1/rollouts')).status).toBe(200);
    }
    // The lost requests created nothing.
    expect(await api.ok<unknown[]>('/api/v1/rollouts')).toEqual([]);
  });

  it('every session of its database terminated, 3 times, while requests and heartbeats flow: never a 500, the process lives, it serves again', async () => {
    const node = await FakeNode.register(api, { hostname: 'connloss-1', region: 'us-east' });
    const outcomes: { what: string; status: number; code?: string | undefined }[] = [];
    const record = (what: string, response: ApiResponse<unknown>) => {
      outcomes.push({ what, status: response.status, code: (response.body as Partial<ErrorBody>)?.error?.code });
    };
    let stopped = false;
    const traffic = async (what: string, send: () => Promise<void>) => {
      while (!stopped) {
        await send();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    const loops = [
      traffic('nodes', async () => record('nodes', await api.get('/api/v1/nodes'))),
      traffic('rollouts', async () => record('rollouts', await api.get('/api/v1/rollouts'))),
      traffic('events', async () => record('events', await api.get('/api/v1/events?limit=5'))),
      traffic('heartbeat', async () => {
        // FakeNode throws on anything but 200 and names the status in its message.
        try {
          await node.heartbeat();
          outcomes.push({ what: 'heartbeat', status: 200 });
        } catch (error) {
          const match = /answered (\d+): (.*)$/s.exec((error as Error).message);
          if (!match) throw error;
          const body = JSON.parse(match[2] as string) as Partial<ErrorBody>;
          outcomes.push({ what: 'heartbeat', status: Number(match[1]), code: body.error?.code });
        }
      }),
    ];
    try {
      for (let round = 1; round <= 3; round++) {
        // A creation waiting on a held lock is a transaction in flight at the moment of the cut,
        // so every round loses at least one checked-out client, not only idle ones.
        const lock = await holdRolloutLock(server);
        const pending = api.post<ErrorBody>('/api/v1/rollouts', spec(`restart-${round}`));
        await waitingBackend(server);
        const before = outcomes.length;
        await waitFor('traffic to flow', async () => outcomes.length >= before + 8);
        expect(await server.terminateBackends()).toBeGreaterThanOrEqual(2);
        expectApiError(await pending, 503, 'DATABASE_UNAVAILABLE');
        await lock.release();
        const cut = outcomes.length;
        await waitFor('every kind of request to succeed again after the cut', async () => {
          const after = outcomes.slice(cut);
          return ['nodes', 'rollouts', 'events', 'heartbeat'].every((what) => after.some((o) => o.what === what && o.status === 200));
        });
        expect(operatorRunning()).toBe(true);
      }
    } finally {
      stopped = true;
      await Promise.all(loops);
    }
    expect(operatorRunning()).toBe(true);
    const failed = outcomes.filter((o) => o.status !== 200);
    // Each failure is the catalog's 503, never a 500 nor anything else.
    expect(failed.filter((o) => o.status !== 503 || o.code !== 'DATABASE_UNAVAILABLE')).toEqual([]);
    expect(outcomes.filter((o) => o.status === 200).length).toBeGreaterThan(40);
    expect((await api.get('/health')).status).toBe(200);
    expect((await api.ok<{ id: string }[]>('/api/v1/nodes')).map((n) => n.id)).toEqual([node.id]);
  });
});

describe('PoolDb.transaction on a Postgres server when its checked-out session is killed', () => {
  let server: ServerDb;
  let db: Db;
  beforeAll(async () => {
    server = await createServerDb('drydock_pooldb');
    // One client only: if the broken one went back into the pool, the next call would get it.
    db = await openDb({ databaseUrl: server.url, poolSize: 1 });
    await db.query('CREATE TABLE marks (id int PRIMARY KEY)');
  });
  afterAll(async () => {
    await db?.close();
    await server?.drop();
  });

  const backendPid = async (tx: Db) => (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]?.pid as number;

  it('killed inside a statement: rejects with a connection-lost error, writes nothing, and the pool hands out a fresh session', async () => {
    let killed = 0;
    const attempt = db.transaction(async (tx) => {
      killed = await backendPid(tx);
      await tx.query('INSERT INTO marks (id) VALUES (1)');
      await tx.query('SELECT pg_sleep(30)');
    });
    // Settled into a value at once, so the rejection is never an unhandled one meanwhile.
    const outcome = attempt.then(() => undefined, (e: unknown) => e);
    await waitFor('the sleeping statement', async () => killed !== 0 && (await server.admin(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'`, [killed])).length === 1);
    await server.admin('SELECT pg_terminate_backend($1)', [killed]);
    const error = await outcome;
    expect(error).toBeInstanceOf(Error);
    expect(isConnectionLost(error)).toBe(true);

    expect(await db.query('SELECT id FROM marks')).toEqual([]);
    const next = await db.transaction(async (tx) => {
      await tx.query('INSERT INTO marks (id) VALUES (2)');
      return backendPid(tx);
    });
    expect(next).not.toBe(killed);
    expect(await db.query('SELECT id FROM marks')).toEqual([{ id: 2 }]);
  });

  it('killed between statements (no query in flight): the next statement rejects as connection-lost, the process lives, the pool recovers', async () => {
    let killed = 0;
    let resume: () => void = () => {};
    const paused = new Promise<void>((resolve) => {
      resume = resolve;
    });
    const attempt = db.transaction(async (tx) => {
      killed = await backendPid(tx);
      await tx.query('INSERT INTO marks (id) VALUES (3)');
      await paused;
      await tx.query('INSERT INTO marks (id) VALUES (4)');
    });
    const outcome = attempt.then(() => undefined, (e: unknown) => e);
    await waitFor('the transaction to pause', async () => killed !== 0);
    await server.admin('SELECT pg_terminate_backend($1)', [killed]);
    // The session's end reaches the client while nothing is in flight: that is the 'error'
    // event that used to go unhandled and end the process.
    await waitFor('the session to be gone', async () => (await server.admin('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [killed])).length === 0);
    await new Promise((resolve) => setImmediate(resolve));
    resume();
    const error = await outcome;
    expect(isConnectionLost(error)).toBe(true);
    expect((await db.query<{ id: number }>('SELECT id FROM marks ORDER BY id')).map((r) => r.id)).toEqual([2]);
    expect(await db.transaction(async (tx) => backendPid(tx))).not.toBe(killed);
  });

  it('every session of the database terminated while idle in the pool: the next query reconnects', async () => {
    await db.query('SELECT 1');
    expect(await server.terminateBackends()).toBe(1);
    await waitFor('a query to succeed after the cut', async () => (await db.query('SELECT 1 AS one')).length === 1);
    expect(await db.transaction(async (tx) => tx.query('SELECT 2 AS two'))).toEqual([{ two: 2 }]);
  });
});
