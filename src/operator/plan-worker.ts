// The thread that computes rollout plans. At issue 9's scale (10,000 nodes, 200,000 instances)
// planning and preflight take hundreds of milliseconds of CPU, and on the operator's event loop
// that stopped /health, heartbeats and every other request for as long. Here they run behind a
// message port; the operator's thread only hands over the facts (a few JSON texts) and turns the
// answer back into the plan, a slice at a time (plan-client.ts).
//
// Like pglite-worker.ts, this module is both a library (imported, it does nothing) and the
// worker's entry: loaded in a worker thread whose workerData carries PLAN_WORKER_MARKER, it
// serves plans. The single-file bundle is started again as that worker, so the gate at the end
// stops the rest of the bundle (the CLI) from running there: serving never returns.
import { randomUUID } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { PlannedMove } from '../domain/rollout/plan.js';
import { computePlan, type PlanFacts, type PlanOutcome } from './plan-compute.js';
import { InstanceCache, type InstanceCacheRef, InstanceTable, type Refusal } from './plan-fleet-cache.js';

/** `workerData` key that makes a module loaded in a worker thread serve plans. */
export const PLAN_WORKER_MARKER = 'drydockPlanWorker';

/** Moves per message: decoding one slice costs the operator's thread a few milliseconds. */
export const MOVES_PER_SLICE = 10_000;

export interface PlanRequest {
  id: number;
  facts: PlanFacts;
  /**
   * Answer with the dry run's response body, rendered here (`chunk`s, then `rendered`): at 200,000
   * moves it is tens of MB of JSON, and stringifying it on the operator's thread stopped /health for as long.
   */
  render?: boolean;
  /**
   * Plan from the worker's kept instances of this fleet with the snapshot's rows applied (they
   * may be only those written since `base`); without it the snapshot's rows are every instance.
   */
  cache?: InstanceCacheRef;
}

/**
 * A slice of the plan's moves: every string in `fields` is an index into the request's string
 * table (sent once, first); 6 fields a move: deployment, batch, from node, from hostname, to node,
 * to hostname (-1: null). Instance ids are mostly distinct, so they travel as they are.
 */
export interface MoveSlice {
  instanceIds: string[];
  fields: Int32Array;
}

export type PlanReply =
  | { id: number; kind: 'strings'; strings: string[] }
  | { id: number; kind: 'moves'; slice: MoveSlice }
  /** The outcome, its plan's `moves` left empty (they came in the slices). */
  | { id: number; kind: 'done'; outcome: PlanOutcome }
  /**
   * The next piece of the response body of POST /rollouts/plan, UTF-8 JSON (a request with
   * `render`); the first says how many instances the worker keeps for the request's fleet now.
   */
  | { id: number; kind: 'chunk'; bytes: Uint8Array; kept?: number }
  /** The body is complete: every chunk came before this. */
  | { id: number; kind: 'rendered' }
  | { id: number; kind: 'failed'; message: string; stack: string | undefined }
  /** The request's instance rows do not apply to what the worker keeps: read them all and ask again. */
  | ({ id: number; kind: 'stale' } & Refusal);

export const MOVE_FIELDS = 6;

/** The moves as a string table and slices of indices (see MoveSlice). */
export function encodeMoves(moves: readonly PlannedMove[], perSlice = MOVES_PER_SLICE): { strings: string[]; slices: MoveSlice[] } {
  const strings: string[] = [];
  const at = new Map<string, number>();
  const intern = (value: string | null): number => {
    if (value === null) return -1;
    let k = at.get(value);
    if (k === undefined) {
      k = strings.push(value) - 1;
      at.set(value, k);
    }
    return k;
  };
  const slices: MoveSlice[] = [];
  for (let start = 0; start < moves.length; start += perSlice) {
    const end = Math.min(moves.length, start + perSlice);
    const slice: MoveSlice = { instanceIds: new Array<string>(end - start), fields: new Int32Array((end - start) * MOVE_FIELDS) };
    for (let j = start; j < end; j++) {
      const m = moves[j] as PlannedMove;
      const o = (j - start) * MOVE_FIELDS;
      slice.instanceIds[j - start] = m.instance_id;
      slice.fields[o] = intern(m.deployment);
      slice.fields[o + 1] = m.batch;
      slice.fields[o + 2] = intern(m.from_node);
      slice.fields[o + 3] = intern(m.from_hostname);
      slice.fields[o + 4] = intern(m.to_node);
      slice.fields[o + 5] = intern(m.to_hostname);
    }
    slices.push(slice);
  }
  return { strings, slices };
}

/** Appends a slice's moves to `into`, with the same fields in the same order as planRollout makes them. */
export function decodeMoves(slice: MoveSlice, strings: readonly string[], into: PlannedMove[]): void {
  const { instanceIds, fields } = slice;
  const text = (k: number) => (k < 0 ? null : (strings[k] as string));
  for (let j = 0; j < instanceIds.length; j++) {
    const o = j * MOVE_FIELDS;
    into.push({
      instance_id: instanceIds[j] as string,
      deployment: strings[fields[o] as number] as string,
      batch: fields[o + 1] as number,
      from_node: strings[fields[o + 2] as number] as string,
      from_hostname: strings[fields[o + 3] as number] as string,
      to_node: text(fields[o + 4] as number),
      to_hostname: text(fields[o + 5] as number),
    });
  }
}

/** Moves per chunk of a rendered body: about 1.8 MB of JSON, stringified in ~10 ms. */
export const MOVES_PER_CHUNK = 10_000;

/**
 * The route's body, `{spec, policies, plan, preflight}` in the order the route always sent them,
 * as chunks the operator's thread writes to the socket while the next ones are stringified: at
 * 200,000 moves the body is 38 MB, and sending it after the last byte was rendered cost the
 * dry run as long again. The moves are cut out of the whole by a token no spec can hold and
 * rendered a slice at a time; `JSON.stringify` of the slices joins to `JSON.stringify` of all.
 */
export function renderBody(
  id: number,
  outcome: Extract<PlanOutcome, { ok: true }>,
  post: (reply: PlanReply, transfer?: ArrayBuffer[]) => void,
  movesPerChunk = MOVES_PER_CHUNK,
  kept?: number,
): void {
  const { spec, policies, plan, preflight } = outcome;
  const token = `drydock-moves-${randomUUID()}`;
  const marker = JSON.stringify(token);
  const whole = JSON.stringify({ spec, policies, plan: { ...plan, moves: token }, preflight });
  const at = whole.indexOf(marker);
  let first = true;
  const send = (text: string) => {
    const bytes = ownBuffer(Buffer.from(text, 'utf8'));
    post({ id, kind: 'chunk', bytes, ...(first && kept !== undefined ? { kept } : {}) }, [bytes.buffer as ArrayBuffer]);
    first = false;
  };
  send(`${whole.slice(0, at)}[`);
  const { moves } = plan;
  for (let start = 0; start < moves.length; start += movesPerChunk) {
    const slice = JSON.stringify(moves.slice(start, start + movesPerChunk));
    send(`${start === 0 ? '' : ','}${slice.slice(1, -1)}`);
  }
  send(`]${whole.slice(at + marker.length)}`);
  post({ id, kind: 'rendered' });
}

/**
 * Bytes with an ArrayBuffer of their own, which moves to the operator's thread without a copy.
 * Buffer.from gives a large buffer one of its own and encodes in about half TextEncoder's time;
 * a small one shares Buffer's pool and is copied out.
 */
function ownBuffer(bytes: Buffer): Uint8Array {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength ? bytes : Uint8Array.from(bytes);
}

/** The instances this worker keeps between requests, by fleet. */
const kept = new InstanceCache();

/** Answers one request: the string table, the move slices, then the rest of the outcome. */
export function answer(request: PlanRequest, post: (reply: PlanReply, transfer?: ArrayBuffer[]) => void, cache: InstanceCache = kept): void {
  const { id } = request;
  try {
    const table = request.cache ? cache.table(request.cache, request.facts.snapshot.instances) : undefined;
    if (table !== undefined && !(table instanceof InstanceTable)) {
      post({ id, kind: 'stale', ...table });
      return;
    }
    const outcome = computePlan(request.facts, table);
    if (!outcome.ok) {
      post({ id, kind: 'done', outcome });
      return;
    }
    if (request.render) {
      renderBody(id, outcome, post, MOVES_PER_CHUNK, table?.size);
      return;
    }
    const { strings, slices } = encodeMoves(outcome.plan.moves);
    post({ id, kind: 'strings', strings });
    for (const slice of slices) post({ id, kind: 'moves', slice }, [slice.fields.buffer as ArrayBuffer]);
    // An empty list in its place keeps the plan's fields in their order for the client to fill.
    post({ id, kind: 'done', outcome: { ...outcome, plan: { ...outcome.plan, moves: [] } } });
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    post({ id, kind: 'failed', message: e.message, stack: e.stack });
  }
}

function serve(port: NonNullable<typeof parentPort>): Promise<never> {
  port.on('message', (request: PlanRequest) => answer(request, (reply, transfer) => port.postMessage(reply, transfer ?? [])));
  return new Promise<never>(() => {});
}

const data = workerData as Record<string, unknown> | null;
if (!isMainThread && parentPort && data?.[PLAN_WORKER_MARKER] === true) {
  await serve(parentPort);
}
