// How long a rollout waited on the operator, read from the event log after the fact (issue 9,
// goal 6: a task advances as soon as the report it waits for is committed). Pure: the caller
// fetches the events and the spec.
//
// Event times are the `at` column, `now()` of the transaction that appended the event: the
// start of that transaction on the database clock, in milliseconds. Two events written by one
// transaction (a node's task done and its node enabled) have the same time.

/** An event as GET /api/v1/events returns it (the fields read here). */
export interface TimedEvent {
  id: number;
  at: string;
  kind: string;
  rollout_id: string | null;
  node_id: string | null;
  data: Record<string, unknown>;
}

/** The spec's own waits, in ms, as the stored spec holds them (GET /api/v1/rollouts/:id → spec). */
export interface RolloutWaits {
  target: { version: string };
  strategy: {
    pauseBetweenBatches: number;
    canary?: { soak: number } | undefined;
    health: { minHealthyTime: number };
  };
}

/**
 * A step the operator only had to react to: the time from the event that let it happen to the
 * event of the step, less any wait the spec itself asks for there.
 */
export type HandoffKind =
  | 'approved → batch 0 started'
  | 'cordoned → drain started'
  | 'drained → version set'
  | 'installed → node completed − minHealthyTime'
  | 'node completed → enabled'
  | 'batch completed → next started − pause/soak';

export interface Handoff {
  kind: HandoffKind;
  /** The node's hostname, or `batch N` for a batch handoff. */
  subject: string;
  ms: number;
}

export interface LatencyStats {
  count: number;
  p50_ms: number | null;
  p95_ms: number | null;
  max_ms: number | null;
}

export interface BatchTiming {
  batch: number;
  /** The spec's waits charged to this batch: the pause (and soak) before it, and minHealthyTime. */
  own_waits_ms: number;
  /** The slowest node of the batch (longest drain + install) and its two measured phases. */
  slowest: string | null;
  drain_ms: number;
  install_ms: number;
}

export interface RolloutTiming {
  rollout_id: string;
  handoffs: LatencyStats & {
    by_kind: Partial<Record<HandoffKind, LatencyStats>>;
    /** The five longest, to say where the time went. */
    slowest: Handoff[];
  };
  /** rollout.started → rollout.completed (or the rollout's last event), against what it could not have beaten. */
  makespan: {
    total_ms: number;
    own_waits_ms: number;
    drain_ms: number;
    install_ms: number;
    /** total − the three above: every handoff, cordons, and what the operator spent on each step. */
    other_ms: number;
    /** own waits + drain + install: the rollout could not be shorter on these nodes. */
    lower_bound_ms: number;
    batches: BatchTiming[];
  } | null;
}

/** Nearest-rank percentile of sorted values (null when there are none). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] as number;
}

export function latencyStats(values: readonly number[]): LatencyStats {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50_ms: percentile(sorted, 50), p95_ms: percentile(sorted, 95), max_ms: sorted.at(-1) ?? null };
}

const ms = (e: TimedEvent) => Date.parse(e.at);

/** One node's forward task, by the events that mark its phases (undefined: not seen). */
interface NodeTimeline {
  nodeId: string;
  hostname: string;
  batch: number;
  started: TimedEvent;
  cordoned?: TimedEvent;
  drainStarted?: TimedEvent;
  drained?: TimedEvent;
  versionSet?: TimedEvent;
  installed?: TimedEvent;
  completed?: TimedEvent;
  enabled?: TimedEvent;
}

const firstAfter = (events: readonly TimedEvent[], kind: string, nodeId: string, from: number, to = Infinity, pick: (e: TimedEvent) => boolean = () => true) =>
  events.find((e) => e.kind === kind && e.node_id === nodeId && ms(e) >= from && ms(e) <= to && pick(e));

/**
 * The rollout's handoffs and makespan. `rolloutEvents`: every event carrying its rollout id;
 * `nodeEvents`: node.drained and node.install_completed events of its nodes (they carry only a
 * node id: the drain reconciler and the agent write them), matched to a task by node and by the
 * task's time window. Only the rollout's forward tasks count (a rollback is another rollout's
 * story); a node whose task failed has no completed handoff and is left out of its batch.
 */
export function measureRolloutTiming(rolloutId: string, spec: RolloutWaits, rolloutEvents: readonly TimedEvent[], nodeEvents: readonly TimedEvent[]): RolloutTiming {
  const events = [...rolloutEvents].sort((a, b) => a.id - b.id);
  const others = [...nodeEvents].sort((a, b) => a.id - b.id);
  const minHealthy = spec.strategy.health.minHealthyTime;

  const timelines: NodeTimeline[] = [];
  for (const started of events) {
    if (started.kind !== 'rollout.node_started' || started.node_id === null || started.data.direction !== 'forward') continue;
    const nodeId = started.node_id;
    const from = ms(started);
    const completed = firstAfter(events, 'rollout.node_completed', nodeId, from, Infinity, (e) => e.data.direction === 'forward');
    const end = completed ? ms(completed) : Infinity;
    const t: NodeTimeline = { nodeId, hostname: String(started.data.hostname ?? nodeId), batch: Number(started.data.batch), started };
    t.cordoned = firstAfter(events, 'node.cordoned', nodeId, from, end);
    t.drainStarted = firstAfter(events, 'node.drain_started', nodeId, from, end);
    t.versionSet = firstAfter(events, 'node.component_version_set', nodeId, from, end, (e) => e.data.version === spec.target.version);
    if (t.drainStarted) t.drained = firstAfter(others, 'node.drained', nodeId, ms(t.drainStarted), t.versionSet ? ms(t.versionSet) : end);
    if (t.versionSet) {
      // The last report of the target version before the task was done (an agent that restarted
      // mid-install may report twice).
      const installs = others.filter((e) => e.kind === 'node.install_completed' && e.node_id === nodeId && e.data.version === spec.target.version && ms(e) >= ms(t.versionSet as TimedEvent) && ms(e) <= end);
      t.installed = installs.at(-1);
    }
    if (completed) {
      t.completed = completed;
      t.enabled = firstAfter(events, 'node.enabled', nodeId, end);
    }
    timelines.push(t);
  }

  const handoffs: Handoff[] = [];
  const add = (kind: HandoffKind, subject: string, from: TimedEvent | undefined, to: TimedEvent | undefined, ownWait = 0) => {
    if (from && to) handoffs.push({ kind, subject, ms: Math.max(0, ms(to) - ms(from) - ownWait) });
  };
  for (const t of timelines) {
    add('cordoned → drain started', t.hostname, t.cordoned, t.drainStarted);
    add('drained → version set', t.hostname, t.drained, t.versionSet);
    add('installed → node completed − minHealthyTime', t.hostname, t.installed, t.completed, minHealthy);
    add('node completed → enabled', t.hostname, t.completed, t.enabled);
  }
  const batchStarts = new Map<number, TimedEvent>();
  const batchEnds = new Map<number, TimedEvent>();
  for (const e of events) {
    const batch = Number(e.data.batch);
    if (e.kind === 'rollout.batch_started' && !batchStarts.has(batch)) batchStarts.set(batch, e);
    if (e.kind === 'rollout.batch_completed' && !batchEnds.has(batch)) batchEnds.set(batch, e);
  }
  const waitBefore = (batch: number) => (batch === 0 ? 0 : spec.strategy.pauseBetweenBatches + (batch === 1 && spec.strategy.canary ? spec.strategy.canary.soak : 0));
  const started = events.find((e) => e.kind === 'rollout.started');
  add('approved → batch 0 started', 'batch 0', started, batchStarts.get(0));
  for (const [batch, begun] of batchStarts) {
    if (batch > 0) add('batch completed → next started − pause/soak', `batch ${batch}`, batchEnds.get(batch - 1), begun, waitBefore(batch));
  }

  const byKind: Partial<Record<HandoffKind, LatencyStats>> = {};
  for (const kind of new Set(handoffs.map((h) => h.kind))) byKind[kind] = latencyStats(handoffs.filter((h) => h.kind === kind).map((h) => h.ms));
  const slowest = [...handoffs].sort((a, b) => b.ms - a.ms).slice(0, 5);

  return {
    rollout_id: rolloutId,
    handoffs: { ...latencyStats(handoffs.map((h) => h.ms)), by_kind: byKind, slowest },
    makespan: makespan(events, timelines, [...batchStarts.keys()].sort((a, b) => a - b), waitBefore, minHealthy, started),
  };
}

function makespan(
  events: readonly TimedEvent[],
  timelines: readonly NodeTimeline[],
  batches: readonly number[],
  waitBefore: (batch: number) => number,
  minHealthy: number,
  started: TimedEvent | undefined,
): RolloutTiming['makespan'] {
  const ended = events.find((e) => e.kind === 'rollout.completed' || e.kind === 'rollout.failed' || e.kind === 'rollout.aborted') ?? events.at(-1);
  if (!started || !ended) return null;
  const span = (from: TimedEvent | undefined, to: TimedEvent | undefined) => (from && to ? Math.max(0, ms(to) - ms(from)) : 0);
  const perBatch: BatchTiming[] = batches.map((batch) => {
    let slowest: NodeTimeline | undefined;
    let longest = -1;
    for (const t of timelines) {
      if (t.batch !== batch || !t.completed) continue;
      const took = span(t.drainStarted, t.drained) + span(t.versionSet, t.installed);
      if (took > longest) {
        longest = took;
        slowest = t;
      }
    }
    return {
      batch,
      own_waits_ms: waitBefore(batch) + (slowest ? minHealthy : 0),
      slowest: slowest?.hostname ?? null,
      drain_ms: span(slowest?.drainStarted, slowest?.drained),
      install_ms: span(slowest?.versionSet, slowest?.installed),
    };
  });
  const sum = (f: (b: BatchTiming) => number) => perBatch.reduce((acc, b) => acc + f(b), 0);
  const total = ms(ended) - ms(started);
  const ownWaits = sum((b) => b.own_waits_ms);
  const drain = sum((b) => b.drain_ms);
  const install = sum((b) => b.install_ms);
  return { total_ms: total, own_waits_ms: ownWaits, drain_ms: drain, install_ms: install, other_ms: total - ownWaits - drain - install, lower_bound_ms: ownWaits + drain + install, batches: perBatch };
}
