// The embedded engine as seen from the operator's thread: a Db whose statements run in a
// worker thread that owns PGlite (pglite-worker.ts). Heavy queries then cost that thread's
// time, not the event loop's that serves HTTP and runs timers.
import { Worker } from 'node:worker_threads';
import { workerScript } from '../worker-script.js';
import pgUtils from 'pg/lib/utils.js';
import { ConnectionLostError, type Db, isConnectionLost, type SessionOptions } from './db.js';
// Imported for its gate: a bundle that contains this module contains the worker too, and is
// started again as the worker (see src/worker-script.ts).
import './pglite-worker.js';
import { PGLITE_WORKER_MARKER, type PgliteReply, type PgliteRequest, type PgliteWorkerData, deserializeError, detachBytes, reviveBytes } from './pglite-protocol.js';

type Request = PgliteRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

interface Pending {
  resolve(reply: PgliteReply): void;
  reject(error: Error): void;
}

/**
 * Starts the worker on `pgdata` (PGlite's own directory) and resolves once the database
 * answers. `onClose` runs after the worker has closed PGlite and ended (the data-dir lock).
 */
export async function openPgliteWorkerDb(pgdata: string, onClose: () => Promise<void> = async () => {}): Promise<Db> {
  const workerData: PgliteWorkerData = { [PGLITE_WORKER_MARKER]: true, pgdata };
  // Arguments of the parent (`operator --listen …`) mean nothing to the worker.
  const worker = new Worker(await workerScript(import.meta.url, './pglite-worker.ts'), { workerData, argv: [], execArgv: [] });
  let onMessage: (message: PgliteReply) => void = () => {};
  let onError: (error: Error) => void = () => {};
  let onExit: (code: number) => void = () => {};
  const started = new Promise<void>((resolve, reject) => {
    onMessage = (message) => {
      if ('ready' in message) resolve();
      else if ('failed' in message) reject(deserializeError(message.failed));
    };
    onError = reject;
    onExit = (code) => reject(new Error(`Connection terminated: the embedded database thread exited with code ${code} while starting`));
  });
  worker.on('message', onMessage).on('error', onError).on('exit', onExit);
  try {
    await started;
  } catch (error) {
    await worker.terminate();
    throw error;
  } finally {
    // Only these: Worker keeps listeners of its own (newListener) that removeAllListeners would take.
    worker.off('message', onMessage).off('error', onError).off('exit', onExit);
  }
  return new PgliteWorkerDb(worker, onClose);
}

class PgliteWorkerDb implements Db {
  readonly engine = 'pglite' as const;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Set once the worker is gone: every later statement fails with it. */
  private lost: Error | undefined;
  private readonly exited: Promise<number>;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly worker: Worker,
    private readonly onClose: () => Promise<void>,
  ) {
    let crash: Error | undefined;
    worker.on('message', (reply: PgliteReply) => this.settle(reply));
    worker.on('error', (error) => {
      crash = error;
    });
    this.exited = new Promise((resolve) => {
      worker.on('exit', (code) => {
        // "Connection terminated" is how node-postgres says a session died: isConnectionLost
        // and every caller that answers 503 for it treat the worker's end the same way.
        this.lost = new Error(`Connection terminated: the embedded database thread exited with code ${code}`, crash ? { cause: crash } : undefined);
        for (const pending of this.pending.values()) pending.reject(this.lost);
        this.pending.clear();
        resolve(code);
      });
    });
    // An idle database does not keep the process alive (as the in-thread engine did not); a
    // statement in flight does (see request).
    worker.unref();
  }

  async query<R>(text: string, values: readonly unknown[] = [], options: SessionOptions = {}): Promise<R[]> {
    return this.run<R>(text, values, undefined, options.urgent === true);
  }

  async transaction<T>(work: (tx: Db) => Promise<T>, options: SessionOptions = {}): Promise<T> {
    // BEGIN in the worker takes its one session: until COMMIT or ROLLBACK, every other caller's
    // statement waits there instead of landing inside this transaction (urgent ones first).
    const begun = await this.request({ op: 'begin', ...(options.urgent ? { urgent: true } : {}) });
    if (!('tx' in begun)) throw new Error('the embedded database did not open a transaction');
    const tx = begun.tx;
    let result: T;
    try {
      result = await work(new TransactionDb(this, tx));
    } catch (error) {
      if (this.lost) {
        // Work that caught the driver's error and threw its own still lost the database: say
        // so, so the caller answers 503 instead of blaming the request (as PoolDb does).
        if (!isConnectionLost(error)) throw new ConnectionLostError(this.lost, error);
      } else {
        await this.request({ op: 'rollback', tx }).catch(() => {});
      }
      throw error;
    }
    await this.request({ op: 'commit', tx });
    return result;
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      if (!this.lost) {
        // Kept alive until PGlite has closed its files and the thread has ended.
        this.worker.ref();
        this.worker.postMessage({ id: this.nextId++, op: 'close' } satisfies PgliteRequest);
      }
      const code = await this.exited;
      await this.onClose();
      if (code !== 0) throw new Error(`the embedded database thread ended with code ${code}`);
    })();
    return this.closed;
  }

  /** One statement, in the transaction `tx` or on its own (then `urgent` as for a transaction). */
  async run<R>(text: string, values: readonly unknown[], tx: number | undefined, urgent = false): Promise<R[]> {
    // The driver's own conversion (Date to text with the offset, arrays to array literals,
    // objects to JSON), done here as it was when the driver ran in this thread: what crosses
    // is strings, nulls and byte arrays, which structured clone carries faithfully.
    const prepared = values.map((value) => pgUtils.prepareValue(value));
    const transfer: ArrayBuffer[] = [];
    detachBytes(prepared, transfer);
    const reply = await this.request({ op: 'query', text, values: prepared, ...(tx === undefined ? {} : { tx }), ...(urgent ? { urgent } : {}) }, transfer);
    if (!('rows' in reply)) throw new Error('the embedded database answered a query without rows');
    if (reply.bytes) for (const row of reply.rows) reviveBytes(row);
    return reply.rows as R[];
  }

  private request(message: Request, transfer: ArrayBuffer[] = []): Promise<PgliteReply> {
    if (this.lost) return Promise.reject(this.lost);
    if (this.closed) return Promise.reject(new Error('Connection terminated: the embedded database is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage({ ...message, id } as PgliteRequest, transfer);
    });
  }

  private settle(reply: PgliteReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0 && !this.closed) this.worker.unref();
    if ('error' in reply) pending.reject(deserializeError(reply.error));
    else pending.resolve(reply);
  }
}

/** The Db handed to a transaction's work: its statements run inside that transaction. */
class TransactionDb implements Db {
  readonly engine = 'pglite' as const;
  constructor(
    private readonly db: PgliteWorkerDb,
    private readonly tx: number,
  ) {}

  query<R>(text: string, values: readonly unknown[] = []): Promise<R[]> {
    return this.db.run<R>(text, values, this.tx);
  }

  /** Nested calls join the outer transaction. */
  transaction<T>(work: (tx: Db) => Promise<T>): Promise<T> {
    return work(this);
  }

  async close(): Promise<void> {}
}
