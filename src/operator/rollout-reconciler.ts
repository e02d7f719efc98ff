import type { Logger } from 'pino';
import { RECONCILED_ROLLOUT_STATUSES, type Rollout, type RolloutTask, TERMINAL } from '../domain/rollout/model.js';
import { liveReplicaVersions, loadCompatFacts } from '../store/compat.js';
import { isBlueGreen } from '../domain/rollout/blue-green.js';
import { rolloutTargets } from '../domain/rollout/spec.js';
import { REPLICA_STALE_AFTER_MS } from './replica-registry.js';
import { decideRollout } from '../domain/rollout/decide.js';
import { untilHealthyLongEnough } from '../domain/rollout/next-wake.js';
import type { Db } from '../store/db.js';
import { readClock } from '../store/fleet-snapshot.js';
import { assertTerm } from '../store/leases.js';
import { applyHookActions, loadHookRunFacts, type OperatorHookRun } from '../store/hook-runs.js';
import { applyRolloutDecision } from '../store/rollout-apply.js';
import { loadNodeFacts, loadUnavailableVersions, rebootClassTargets } from '../store/rollout-facts.js';
import { activeRolloutIds, loadRollout, recordSchemaStep, TaskConflictError } from '../store/rollouts.js';
import { appendEvents } from '../store/events.js';
import { EVENT } from '../domain/events.js';
import { OPERATOR_COMPONENT, type SchemaPhase } from '../domain/rollout/schema-steps.js';
import type { SchemaStepRunner } from './schema-steps.js';
import type { DesiredWaiters } from './desired-waiters.js';
import type { FleetReconciler } from './fleet-reconciler.js';
import { type LeaderLease, RECONCILER_LEASE } from './leader-lease.js';
import { RolloutHookRunner } from './rollout-hook-runner.js';
import { type ReconcileResult, WorkQueue } from './work-queue.js';

/** A full listing of the active rollouts this often, as a safety net for a wake that was lost (another replica's write). */
const LIST_EVERY_MS = 5_000;
/** Between batches (or before the first): the next pass may start one. */
function atBatchBoundary(rollout: Rollout, tasks: readonly RolloutTask[]): boolean {
  if (rollout.status !== 'running' && rollout.status !== 'waiting_for_window') return false;
  if (rollout.currentBatch + 1 >= rollout.batchCount) return false;
  return tasks.every((t) => t.batch !== rollout.currentBatch || t.direction !== 'forward' || TERMINAL.includes(t.state));
}

/** A blue-green rollout past its last batch, whose old replicas were retired: are they gone yet? */
function atBlueGreenEnd(rollout: Rollout, tasks: readonly RolloutTask[]): boolean {
  if (!isBlueGreen(rollout) || rollout.previousRetiredAt === null || rollout.currentBatch + 1 < rollout.batchCount) return false;
  return tasks.every((t) => t.direction !== 'forward' || TERMINAL.includes(t.state));
}

/** Wait before a failed schema step is tried again. */
const SCHEMA_RETRY_MS = 5_000;
/** Decisions of one rollout in one transaction while each moves something (see reconcile). */
const STEPS_PER_PASS = 5;

/** What the decisions of one pass did. */
interface PassOutcome {
  touched: string[];
  active: boolean;
  nodeIds: string[];
  wake: number | null;
  drains: string[];
  operatorRuns: OperatorHookRun[];
  schema?: { phase: SchemaPhase; component: string; version: string } | undefined;
  /** Whether the decision wrote anything. */
  changed: boolean;
}

/** Passes at once in a row before a rollout waits a tick (see reconcileKey). */
const MAX_IMMEDIATE = 20;

/**
 * The rollout reconciler (leader only), keyed by rollout id: in its own transaction fenced by the
 * leader's term it loads the rollout, its tasks and its nodes' facts → decideRollout → apply.
 * A rollout is reconciled when something it waits for is committed — an agent's report about one
 * of its nodes, a drain or migration of one of them, a human's decision — so a task moves on as
 * soon as the report it waits for lands, not on the next tick (issue 9 goal 6); and every
 * `intervalMs` while it is active (soaks, windows and deadlines are waits on the clock).
 * Reconciled by id from current state, so a crash between passes loses nothing.
 */
export class RolloutReconciler {
  readonly queue: WorkQueue;
  /** Passes that ran as leader (tests read it). */
  ticks = 0;
  /** Which active rollouts have a task on each node, as their last pass saw them. */
  private readonly rolloutsByNode = new Map<string, Set<string>>();
  private readonly nodesByRollout = new Map<string, string[]>();
  private lister: NodeJS.Timeout | undefined;
  /** Passes in a row that asked for another at once, per rollout. */
  private readonly immediate = new Map<string, number>();
  /** The last fleet wait said for each rollout (decision.waitingFor), so a repeat is not another event. */
  private readonly waitReasons = new Map<string, string>();
  /** Per rollout, its target components whose artifact reboots the node: an artifact's `reboot` never changes, so read once. */
  private readonly rebootClass = new Map<string, string[]>();
  /** The last failure of each rollout's schema step (`id/phase`), so a repeat is not another event. */
  private readonly schemaFailures = new Map<string, string>();
  /** preRollout / postRollout hooks this process runs (as leader). */
  readonly hooks: RolloutHookRunner;

  constructor(
    private readonly db: Db,
    private readonly lease: LeaderLease,
    private readonly waiters: DesiredWaiters,
    private readonly fleet: FleetReconciler,
    private readonly log: Logger,
    /** Time between passes of an active rollout when nothing wakes it (default 500 ms). */
    private readonly intervalMs = 500,
    /** Applies a target operator build's migrations (migrations: auto); absent: such steps fail with a reason. */
    private readonly schemaSteps?: SchemaStepRunner,
  ) {
    this.queue = new WorkQueue('rollout', (id) => this.reconcileKey(id), log);
    this.hooks = new RolloutHookRunner(db, lease.holder, (id) => this.wake(id), log.child({ part: 'rollout-hooks' }));
  }

  start(): void {
    this.queue.start();
    this.wake();
    this.lister = setInterval(() => this.wake(), LIST_EVERY_MS);
    this.lister.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.lister);
    this.hooks.stop();
    await this.queue.stop();
  }

  /** Reconcile this rollout soon; without an id, every active one (read from the database). */
  wake(rolloutId?: string): void {
    if (rolloutId !== undefined) return this.queue.add(rolloutId);
    if (this.lease.term === null) return;
    activeRolloutIds(this.db, RECONCILED_ROLLOUT_STATUSES)
      .then((ids) => this.queue.addAll(ids))
      .catch((error: unknown) => this.log.warn({ err: error }, 'could not list the active rollouts; the next listing retries'));
  }

  /** Reports or fleet changes about these nodes landed: the rollouts with a task on them look again. */
  nodesChanged(nodeIds: Iterable<string>): void {
    for (const id of nodeIds) for (const rollout of this.rolloutsByNode.get(id) ?? []) this.queue.add(rollout);
  }

  private async reconcileKey(id: string): Promise<ReconcileResult> {
    const term = this.lease.term;
    if (term === null) return {};
    this.ticks++;
    try {
      let next = await this.reconcile(id, term);
      if (next === undefined) this.forget(id);
      // Passes at once after a change settle within a few steps; a decision that kept changing
      // something forever (a bug) must not spin: after MAX_IMMEDIATE in a row it waits a tick.
      const immediate = next === 0 ? (this.immediate.get(id) ?? 0) + 1 : 0;
      this.immediate.set(id, immediate);
      if (immediate > MAX_IMMEDIATE) next = this.intervalMs;
      // The decision's own waits (a pause, a soak, minHealthyTime) end exactly when they end; the
      // periodic pass stays as the bound (deadlines are checked on it).
      return next === undefined ? {} : { requeueAfterMs: Math.min(next ?? this.intervalMs, this.intervalMs) };
    } catch (error) {
      // Someone else moved a task first: decide again on the new state at once.
      if (error instanceof TaskConflictError) return { requeueAfterMs: 0 };
      throw error;
    }
  }

  private remember(id: string, nodeIds: string[]): void {
    this.forget(id);
    this.nodesByRollout.set(id, nodeIds);
    for (const node of nodeIds) {
      const set = this.rolloutsByNode.get(node) ?? new Set<string>();
      set.add(id);
      this.rolloutsByNode.set(node, set);
    }
  }

  private forget(id: string): void {
    for (const node of this.nodesByRollout.get(id) ?? []) {
      const set = this.rolloutsByNode.get(node);
      set?.delete(id);
      if (set?.size === 0) this.rolloutsByNode.delete(node);
    }
    this.nodesByRollout.delete(id);
    this.immediate.delete(id);
  }

  /**
   * Applies the target build's migrations of one phase, outside any transaction (it takes a
   * child process and seconds), then records it on the rollout with an event, fenced by the term.
   * A failure is an event (once per distinct reason) and is tried again after SCHEMA_RETRY_MS;
   * the rollout waits meanwhile, and a person may abort it.
   */
  private async schemaStep(id: string, term: number, step: { phase: SchemaPhase; component: string; version: string }): Promise<number> {
    const outcome = this.schemaSteps
      ? await this.schemaSteps.run(step.component, step.version, step.phase)
      : ({ ok: false, reason: 'this operator cannot run schema steps' } as const);
    const key = `${id}/${step.phase}`;
    if (!outcome.ok && this.schemaFailures.get(key) === outcome.reason) return SCHEMA_RETRY_MS;
    await this.db.transaction(async (tx) => {
      await assertTerm(tx, RECONCILER_LEASE, this.lease.holder, term);
      if (outcome.ok) {
        await recordSchemaStep(tx, id, step.phase);
        const kind = step.phase === 'pre' ? EVENT.rollout.schema_expanded : EVENT.rollout.schema_contracted;
        await appendEvents(tx, [{ kind, actor: 'reconciler', rolloutId: id, data: { component: step.component, version: step.version, applied: outcome.applied } }]);
      } else {
        await appendEvents(tx, [{ kind: EVENT.rollout.schema_step_failed, actor: 'reconciler', rolloutId: id, data: { phase: step.phase, version: step.version, reason: outcome.reason } }]);
      }
    });
    if (outcome.ok) {
      this.schemaFailures.delete(key);
      return 0;
    }
    this.schemaFailures.set(key, outcome.reason);
    this.log.warn({ rollout: id, phase: step.phase, reason: outcome.reason }, 'schema step failed; retrying');
    return SCHEMA_RETRY_MS;
  }

  /**
   * One pass of one rollout. Returns undefined when it is no longer one the reconciler drives,
   * else when it wants to be looked at again (ms; null: no timed wait of its own).
   *
   * A step that moved something is followed by the next at once, in the same fenced transaction
   * (up to STEPS_PER_PASS): a step that waits for no report — cordoned → draining, installing →
   * verifying → healthy since now, a batch after a pause of 0 — is decided from the first step's
   * writes instead of a queued pass later, which would wait for the database behind the fleet
   * passes the same change woke (issue 9 goal 6). Deciding is idempotent, so the loop ends at the
   * first step that changes nothing.
   */
  private async reconcile(id: string, term: number): Promise<number | null | undefined> {
    const { touched, active, nodeIds, wake, drains, operatorRuns, schema } = await this.db.transaction(async (tx) => {
      await assertTerm(tx, RECONCILER_LEASE, this.lease.holder, term);
      const all: PassOutcome = { touched: [], active: false, nodeIds: [], wake: null, drains: [], operatorRuns: [], changed: false };
      for (let i = 0; i < STEPS_PER_PASS; i++) {
        const step = await this.step(tx, id);
        all.touched.push(...step.touched);
        all.drains.push(...step.drains);
        all.operatorRuns.push(...step.operatorRuns);
        Object.assign(all, { active: step.active, nodeIds: step.nodeIds, wake: step.wake, schema: step.schema });
        // An operator hook run starts only once this transaction commits: until then the next
        // step would find it neither running here nor anywhere, so the queue passes again after.
        if (!step.changed || !step.active || step.schema || step.operatorRuns.length > 0) break;
      }
      // Several steps touch the same nodes: each is woken once.
      return { ...all, touched: [...new Set(all.touched)], drains: [...new Set(all.drains)] };
    });
    // Started once their runs are committed as running and owned by this process.
    for (const run of operatorRuns) this.hooks.start(run);
    if (active) this.remember(id, nodeIds);
    else this.rebootClass.delete(id);
    if (touched.length > 0) {
      this.waiters.wake(touched);
      // A drain is the fleet's work; a cordon, an install or an enable only changes the node's
      // status (judged for liveness) — no fleet pass for them, so the rollout's own next pass
      // does not wait behind one for the database.
      if (drains.length > 0) this.fleet.nodesChanged(drains);
      this.fleet.nodesTouched(touched);
    }
    if (schema) return this.schemaStep(id, term, schema);
    return active ? wake : undefined;
  }

  /** One decision of one rollout and its writes, in the caller's fenced transaction. */
  private async step(tx: Db, id: string): Promise<PassOutcome> {
    const loaded = await loadRollout(tx, id, { lock: true });
    const none: OperatorHookRun[] = [];
    if (!loaded || !RECONCILED_ROLLOUT_STATUSES.includes(loaded.rollout.status)) return { touched: [], active: false, nodeIds: [], wake: null, drains: [], operatorRuns: none, changed: false };
    const { spec } = loaded.rollout;
    const nodeIds = loaded.tasks.map((t) => t.nodeId);
    const component = loaded.rollout.spec.target.component;
    const facts = await loadNodeFacts(tx, nodeIds, component, rolloutTargets(spec).map((t) => t.component));
    const fromVersions = loaded.tasks.map((t) => t.fromVersion).filter((v): v is string => v !== null);
    const unavailable = await loadUnavailableVersions(tx, component, fromVersions);
    const { now } = await readClock(tx);
    const hookRuns = await loadHookRunFacts(tx, id, (runId) => this.hooks.isRunning(runId));
    // At a batch boundary the matrix is checked again against what runs now (a few small reads, once per batch).
    // A control-plane rollout also counts the region's ready replicas before it stops more of them.
    const compat = atBatchBoundary(loaded.rollout, loaded.tasks)
      ? await loadCompatFacts(tx, REPLICA_STALE_AFTER_MS, { readyReplicas: component === OPERATOR_COMPONENT && spec.strategy.minAvailablePerRegion !== undefined })
      : atBlueGreenEnd(loaded.rollout, loaded.tasks)
        ? { rules: [], running: new Map(), operatorVersions: await liveReplicaVersions(tx, REPLICA_STALE_AFTER_MS) }
        : undefined;
    // Target components whose artifact reboots the node: staged before each node's cordon.
    let prestage = this.rebootClass.get(id);
    if (!prestage) {
      prestage = await rebootClassTargets(tx, rolloutTargets(spec));
      this.rebootClass.set(id, prestage);
    }
    const rollout = prestage.length > 0 ? { ...loaded.rollout, prestage } : loaded.rollout;
    const decision = decideRollout(rollout, loaded.tasks, facts, now, unavailable, (runId) => hookRuns.get(runId), compat);
    // A wait on the fleet is said once per reason (an event), not on every pass.
    if (decision.waitingFor && this.waitReasons.get(id) !== decision.waitingFor) {
      this.waitReasons.set(id, decision.waitingFor);
      decision.events.push({ kind: 'rollout.waiting_for_replicas', data: { batch: loaded.rollout.currentBatch + 1, reason: decision.waitingFor } });
    } else if (!decision.waitingFor) this.waitReasons.delete(id);
    const hookActions = decision.hooks ?? [];
    const changed = decision.tasks.length + decision.commands.length + decision.events.length + Object.keys(decision.rollout).length + hookActions.length;
    const status = decision.rollout.status ?? loaded.rollout.status;
    const stillActive = RECONCILED_ROLLOUT_STATUSES.includes(status);
    const tasks = loaded.tasks.map((t) => ({ ...t, ...decision.tasks.find((c) => c.id === t.id)?.changes }));
    const waits = [decision.requeueAfterMs, untilHealthyLongEnough(loaded.rollout, tasks, now)].filter((w): w is number => typeof w === 'number');
    const wake = waits.length > 0 ? Math.min(...waits) : null;
    const schema = decision.schema ? { phase: decision.schema, component: spec.target.component, version: spec.target.version } : undefined;
    if (changed === 0) return { touched: [], active: stillActive, nodeIds, wake, drains: [], operatorRuns: none, schema, changed: false };
    const drains = decision.commands.filter((c) => c.kind === 'drain' || c.kind === 'restart_instances').map((c) => c.nodeId);
    const touched = await applyRolloutDecision(tx, loaded.rollout, loaded.tasks, decision);
    // Hook runs asked for or given up on, in the same fenced transaction as the task moves.
    const hooks = await applyHookActions(tx, hookActions, this.lease.holder);
    return { touched: [...new Set([...touched, ...hooks.nodes])], active: stillActive, nodeIds, wake: 0, drains, operatorRuns: hooks.operatorRuns, schema, changed: true };
  }
}
