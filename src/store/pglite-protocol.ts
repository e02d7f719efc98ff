// The messages between the operator's thread and the thread that owns the embedded database
// (pglite-worker.ts), and how values cross between them. Structured clone carries strings,
// numbers, Dates, plain objects and arrays as they are; what needs care is written here.

/** `workerData` key that makes a module loaded in a worker thread serve the embedded database. */
export const PGLITE_WORKER_MARKER = 'drydockPgliteWorker';

export interface PgliteWorkerData {
  [PGLITE_WORKER_MARKER]: true;
  /** The PGlite data directory (the `pgdata` folder inside drydock's data dir). */
  pgdata: string;
}

export type PgliteRequest =
  /** `urgent` counts for a statement on its own (no `tx`), as for `begin`. */
  | { id: number; op: 'query'; text: string; values: unknown[]; tx?: number; urgent?: boolean }
  | { id: number; op: 'begin'; urgent?: boolean }
  | { id: number; op: 'commit' | 'rollback'; tx: number }
  | { id: number; op: 'close' };

export type PgliteReply =
  /** `bytes`: some value is a byte array (bytea), to be made a Buffer again. */
  | { id: number; rows: Record<string, unknown>[]; bytes?: true }
  | { id: number; tx: number }
  | { id: number; done: true }
  | { id: number; error: SerializedError }
  | { id: 0; ready: true }
  | { id: 0; failed: SerializedError };

/**
 * An error as plain data: structured clone keeps an Error's message but drops the fields the
 * driver adds (`code` = SQLSTATE, `detail`, `constraint`, ...), and callers branch on those.
 */
export interface SerializedError {
  message: string;
  stack?: string | undefined;
  fields: Record<string, unknown>;
}

export function serializeError(error: unknown): SerializedError {
  const fields: Record<string, unknown> = {};
  if (typeof error !== 'object' || error === null) return { message: String(error), fields };
  for (const [key, value] of Object.entries(error)) {
    if (value === undefined || typeof value === 'function') continue;
    fields[key] = typeof value === 'object' && value !== null ? String(value) : value;
  }
  if (!(error instanceof Error)) {
    // PGlite's file system throws Emscripten's ErrnoError, a plain object ({ name, errno }).
    const message = (error as { message?: unknown }).message;
    return { message: typeof message === 'string' ? message : `embedded database: ${JSON.stringify(fields)}`, fields };
  }
  // DatabaseError sets `name` as an own property ('error'); keep a custom name either way.
  if (error.name !== 'Error') fields.name = error.name;
  return { message: error.message, stack: error.stack, fields };
}

/** The error again, with the same message and fields (`code` first of all) as on the other side. */
export function deserializeError(serialized: SerializedError): Error {
  const error = new Error(serialized.message);
  Object.assign(error, serialized.fields);
  // The stack of the thread that ran the statement says where in the driver it failed; the
  // caller's own frames are lost either way once the reply comes back through a message.
  if (serialized.stack) error.stack = serialized.stack;
  return error;
}

/**
 * A copy of `view` in an ArrayBuffer of its own, so it can be transferred rather than cloned.
 * Cloning a view copies its whole backing store: a Buffer from Node's 8 KiB pool, or a slice
 * of a large read, would carry every other byte of that store along with it.
 */
export function ownBytes(view: ArrayBufferView): Uint8Array<ArrayBuffer> {
  const copy = new Uint8Array(view.byteLength);
  copy.set(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
  return copy;
}

/**
 * Readies values for postMessage: every byte array gets a buffer of its own, listed in
 * `transfer`. `values` is a list of parameters or one row of results, changed in place; one
 * level of arrays is searched (bytea[]), which is as deep as a row or a prepared parameter goes.
 */
export function detachBytes(values: unknown[] | Record<string, unknown>, transfer: ArrayBuffer[]): void {
  const record = values as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const value = record[key];
    if (ArrayBuffer.isView(value)) {
      const own = ownBytes(value);
      transfer.push(own.buffer);
      record[key] = own;
    } else if (Array.isArray(value) && value.some((item) => ArrayBuffer.isView(item))) {
      const copy: unknown[] = [...value];
      detachBytes(copy, transfer);
      record[key] = copy;
    }
  }
}

/** Byte arrays that crossed the thread boundary become Buffers again, as pg returns bytea. */
export function reviveBytes(row: Record<string, unknown>): Record<string, unknown> {
  for (const key of Object.keys(row)) {
    const value = row[key];
    if (value instanceof Uint8Array) row[key] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    else if (Array.isArray(value) && value.some((item) => item instanceof Uint8Array)) {
      row[key] = value.map((item: unknown) => (item instanceof Uint8Array ? Buffer.from(item.buffer, item.byteOffset, item.byteLength) : item));
    }
  }
  return row;
}
