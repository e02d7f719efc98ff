// The thread that owns the embedded database. PGlite runs Postgres (WASM) on the thread that
// calls it, so on the operator's own event loop a heavy query stopped timers and HTTP for its
// whole duration (1,000 nodes heartbeating: p99 979 ms). Here it runs behind a message port
// instead; the operator's thread only posts statements and gets rows back (pglite-db.ts).
//
// This module is both a library (imported, it does nothing) and the worker's entry: loaded in
// a worker thread whose workerData carries PGLITE_WORKER_MARKER, it serves the database. The
// single-file bundle is started again as that worker, so the gate below must stop the rest of
// the bundle (the CLI) from running in the worker: serving never returns, and the thread ends
// with process.exit once the database is closed.
import { writeFileSync } from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { loadEmbeddedEngine } from './embedded-engine.js';
import { PGLITE_WORKER_MARKER, type PgliteReply, type PgliteRequest, type PgliteWorkerData, detachBytes, serializeError } from './pglite-protocol.js';

/**
 * Serves requests from `port` on a node-postgres pool over PGlite: the same adapter, type
 * parsers and parameter handling as the operator used in its own thread, so rows come back
 * with the same shapes (int8 as string, timestamptz as Date, jsonb parsed, bytea as bytes).
 */
async function serve(port: NonNullable<typeof parentPort>, pgdata: string): Promise<never> {
  let pglite: InstanceType<typeof import('@electric-sql/pglite').PGlite>;
  let pool: pg.Pool;
  try {
    const [{ PGlite }, { createPgConfig }] = await loadEmbeddedEngine(() =>
      Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite/node-postgres')]),
    );
    pglite = await PGlite.create(pgdata);
    // The adapter gives the pool one connection over the one PGlite session: a checked-out
    // client (a transaction) holds it, and every other statement queues behind it.
    pool = new pg.Pool(createPgConfig(pglite) as unknown as pg.PoolConfig);
    await pool.query('select 1');
  } catch (error) {
    port.postMessage({ id: 0, failed: serializeError(error) } satisfies PgliteReply);
    return exit(1);
  }

  const transactions = new Map<number, pg.PoolClient>();
  // A checked-out client whose statement fails inside the adapter emits 'error'; without a
  // listener that would end the thread instead of failing the statement. The listener comes off
  // at release: the pool hands the same client to every transaction. Released without an error
  // even after a failed statement: the pool would discard the client, and the adapter's next one
  // shares the same (then ended) connection object; PGlite's one session stays usable.
  const ignoreError = () => {};
  const release = (client: pg.PoolClient) => {
    client.removeListener('error', ignoreError);
    client.release();
  };
  let nextTx = 1;
  let closing = false;

  // The one session, handed out here rather than in the pool's queue: a statement on its own or
  // a transaction from BEGIN to COMMIT holds it, and when it frees, an urgent statement or
  // transaction (the heartbeat batch) goes before the rest, which keep their order.
  let sessionHeld = false;
  const waiting: { urgent: boolean; grant: () => void }[] = [];
  const acquire = (urgent: boolean) =>
    new Promise<void>((grant) => {
      if (!sessionHeld) {
        sessionHeld = true;
        grant();
        return;
      }
      const at = urgent ? waiting.findIndex((w) => !w.urgent) : -1;
      if (at === -1) waiting.push({ urgent, grant });
      else waiting.splice(at, 0, { urgent, grant });
    });
  const releaseSession = () => {
    const next = waiting.shift();
    if (next) next.grant();
    else sessionHeld = false;
  };

  const reply = (message: PgliteReply, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
  const stats = statementStats(process.env.DRYDOCK_PGLITE_STATS);
  /** Per open transaction: when it began and its first statement (what the stats file calls it). */
  const opened = new Map<number, { at: number; first?: string }>();

  async function handle(request: PgliteRequest): Promise<void> {
    try {
      switch (request.op) {
        case 'query': {
          const runner = request.tx === undefined ? pool : transactions.get(request.tx);
          if (!runner) throw new Error(`transaction ${request.tx} is not open in the embedded database`);
          const started = performance.now();
          if (request.tx === undefined) await acquire(request.urgent === true);
          let result: pg.QueryResult;
          try {
            result = await runner.query(request.text, request.values);
          } finally {
            if (request.tx === undefined) releaseSession();
          }
          if (stats) {
            stats.add(request.tx === undefined ? 'statement' : 'in transaction', request.text, performance.now() - started);
            const tx = request.tx === undefined ? undefined : opened.get(request.tx);
            if (tx && tx.first === undefined) tx.first = request.text;
          }
          // Several statements in one text give one result each and no `rows` (as PoolDb did:
          // migrations run that way and read nothing back).
          const rows = (result as Partial<pg.QueryResult>).rows as Record<string, unknown>[] | undefined;
          const transfer: ArrayBuffer[] = [];
          for (const row of rows ?? []) detachBytes(row, transfer);
          reply({ id: request.id, rows: rows as Record<string, unknown>[], ...(transfer.length > 0 ? { bytes: true } : {}) }, transfer);
          return;
        }
        case 'begin': {
          await acquire(request.urgent === true);
          let client: pg.PoolClient;
          try {
            client = await pool.connect();
          } catch (error) {
            releaseSession();
            throw error;
          }
          client.on('error', ignoreError);
          try {
            await client.query('BEGIN');
          } catch (error) {
            release(client);
            releaseSession();
            throw error;
          }
          const tx = nextTx++;
          transactions.set(tx, client);
          if (stats) opened.set(tx, { at: performance.now() });
          reply({ id: request.id, tx });
          return;
        }
        case 'commit':
        case 'rollback': {
          const client = transactions.get(request.tx);
          if (!client) throw new Error(`transaction ${request.tx} is not open in the embedded database`);
          transactions.delete(request.tx);
          const began = opened.get(request.tx);
          opened.delete(request.tx);
          if (stats && began) stats.add('transaction held', began.first ?? '(empty)', performance.now() - began.at);
          try {
            await client.query(request.op === 'commit' ? 'COMMIT' : 'ROLLBACK');
            release(client);
          } catch (error) {
            // A COMMIT that failed (a deferred constraint) has rolled back already; the ROLLBACK
            // makes sure no transaction stays open in the one session, as PoolDb does.
            await client.query('ROLLBACK').catch(() => {});
            release(client);
            throw error;
          } finally {
            releaseSession();
          }
          reply({ id: request.id, done: true });
          return;
        }
        case 'close': {
          if (closing) return;
          closing = true;
          for (const client of transactions.values()) release(client);
          transactions.clear();
          await pool.end();
          await pglite.close();
          return exit(0);
        }
      }
    } catch (error) {
      reply({ id: request.id, error: serializeError(error) });
    }
  }

  port.on('message', (request: PgliteRequest) => void handle(request));
  reply({ id: 0, ready: true });
  return new Promise<never>(() => {});
}

/**
 * DRYDOCK_PGLITE_STATS=FILE (a diagnostic, off by default): every 5 s the worker writes, per
 * statement text, how often it ran and its total and longest time (a statement outside a
 * transaction includes its wait for the one session), and how long each kind of transaction
 * held the session (named by its first statement), longest total first.
 */
function statementStats(file: string | undefined) {
  if (!file) return undefined;
  const table = new Map<string, { kind: string; text: string; count: number; totalMs: number; maxMs: number }>();
  const timer = setInterval(() => {
    const rows = [...table.values()].sort((a, b) => b.totalMs - a.totalMs);
    writeFileSync(file, JSON.stringify(rows.map((r) => ({ ...r, totalMs: Math.round(r.totalMs), maxMs: Math.round(r.maxMs) })), null, 1));
  }, 5_000);
  timer.unref();
  return {
    add(kind: string, sql: string, ms: number) {
      const text = sql.replace(/\s+/g, ' ').slice(0, 160);
      const key = `${kind}|${text}`;
      const row = table.get(key) ?? { kind, text, count: 0, totalMs: 0, maxMs: 0 };
      row.count += 1;
      row.totalMs += ms;
      row.maxMs = Math.max(row.maxMs, ms);
      table.set(key, row);
    },
  };
}

/** Ends this worker thread (not the process). The caller sees it as the worker's exit code. */
function exit(code: number): never {
  process.exit(code);
}

const data = workerData as Partial<PgliteWorkerData> | null;
if (!isMainThread && parentPort && data?.[PGLITE_WORKER_MARKER] === true && typeof data.pgdata === 'string') {
  await serve(parentPort, data.pgdata);
}

