// The operator's side of the plan worker (plan-worker.ts): one worker thread per process,
// started on the first plan and kept; requests are numbered, answers come back in slices.
import { PassThrough, type Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { workerScript } from '../worker-script.js';
import type { PlannedMove } from '../domain/rollout/plan.js';
import type { PlanFacts, PlanOutcome } from './plan-compute.js';
import type { InstanceCacheRef, Refusal } from './plan-fleet-cache.js';
import { decodeMoves, PLAN_WORKER_MARKER, type PlanReply, type PlanRequest } from './plan-worker.js';

interface Pending {
  resolve: (outcome: PlanOutcome | RenderedPlan | Stale) => void;
  reject: (error: Error) => void;
  strings: string[];
  moves: PlannedMove[];
  /** A rendered body being received: its chunks go here, the first one resolved the request. */
  body?: PassThrough;
}

let worker: Worker | undefined;
let starting: Promise<Worker> | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();

/**
 * Plans in the worker thread. The operator's thread only copies the facts over and rebuilds the
 * moves one slice per message (MOVES_PER_SLICE), so between two slices it serves other requests.
 */
export async function planInWorker(facts: PlanFacts): Promise<PlanOutcome> {
  return (await ask({ facts })) as PlanOutcome;
}

/**
 * The dry run's response body, rendered in the worker (see PlanRequest.render) and streamed as it
 * is (the first bytes come before the last are rendered); a spec the policies refuse comes back as issues.
 */
export type RenderedPlan = { ok: true; body: Readable; kept?: number } | Extract<PlanOutcome, { ok: false }>;

/** The worker could not apply the facts' instance rows to what it keeps (PlanRequest.cache): read again as `refusal` says and ask again. */
export interface Stale {
  ok: 'stale';
  refusal: Refusal;
}

/** Renders the dry run; with `cache`, from the worker's kept instances of that fleet (plan-fleet-cache.ts). */
export async function renderPlanInWorker(facts: PlanFacts, cache?: InstanceCacheRef): Promise<RenderedPlan | Stale> {
  return (await ask({ facts, render: true, ...(cache ? { cache } : {}) })) as RenderedPlan | Stale;
}

async function ask(request: Omit<PlanRequest, 'id'>): Promise<PlanOutcome | RenderedPlan | Stale> {
  const thread = await planWorker();
  const id = nextId++;
  return new Promise<PlanOutcome | RenderedPlan | Stale>((resolve, reject) => {
    pending.set(id, { resolve, reject, strings: [], moves: [] });
    // Held while a plan is out, so a process with nothing else to do still waits for it.
    thread.ref();
    thread.postMessage({ id, ...request } satisfies PlanRequest);
  });
}

function planWorker(): Promise<Worker> {
  if (worker) return Promise.resolve(worker);
  starting ??= start().finally(() => {
    starting = undefined;
  });
  return starting;
}

async function start(): Promise<Worker> {
  const thread = new Worker(await workerScript(import.meta.url, './plan-worker.ts'), { workerData: { [PLAN_WORKER_MARKER]: true }, argv: [], execArgv: [] });
  thread.unref();
  thread.on('message', (reply: PlanReply) => onReply(thread, reply));
  const fail = (error: Error) => {
    if (worker === thread) worker = undefined;
    for (const [id, request] of pending) {
      pending.delete(id);
      const stopped = new Error(`the plan worker stopped: ${error.message}`, { cause: error });
      if (request.body) request.body.destroy(stopped);
      else request.reject(stopped);
    }
  };
  thread.on('error', fail);
  thread.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  worker = thread;
  return thread;
}

function onReply(thread: Worker, reply: PlanReply): void {
  const request = pending.get(reply.id);
  if (!request) return;
  switch (reply.kind) {
    case 'strings':
      request.strings = reply.strings;
      return;
    case 'moves':
      decodeMoves(reply.slice, request.strings, request.moves);
      return;
    case 'done': {
      pending.delete(reply.id);
      if (pending.size === 0) thread.unref();
      const { outcome } = reply;
      if (outcome.ok) outcome.plan.moves = request.moves;
      request.resolve(outcome);
      return;
    }
    case 'chunk': {
      if (!request.body) {
        request.body = new PassThrough();
        // Whoever reads the body sees an error through its own listener; one that arrives after
        // the reader left (the client hung up) must not end the process as unhandled.
        request.body.on('error', () => {});
        request.resolve({ ok: true, body: request.body, ...(reply.kept === undefined ? {} : { kept: reply.kept }) });
      }
      request.body.write(reply.bytes);
      return;
    }
    case 'rendered': {
      pending.delete(reply.id);
      if (pending.size === 0) thread.unref();
      request.body?.end();
      return;
    }
    case 'stale': {
      pending.delete(reply.id);
      if (pending.size === 0) thread.unref();
      const { id: _id, kind: _kind, ...refusal } = reply;
      request.resolve({ ok: 'stale', refusal });
      return;
    }
    case 'failed': {
      pending.delete(reply.id);
      if (pending.size === 0) thread.unref();
      const error = new Error(`planning failed: ${reply.message}`);
      if (reply.stack) error.stack = reply.stack;
      // Failed while its body was on the way: the response is cut off, never completed wrong.
      if (request.body) request.body.destroy(error);
      else request.reject(error);
      return;
    }
  }
}
