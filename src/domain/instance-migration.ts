// One move of one instance to another node, as an aggregate with its own state machine
// (DESIGN.md §10). A `restart` move is make-before-break: a replacement starts on the target
// and takes over once healthy. A `live` move (the `vm` driver) carries the running guest over:
// the target agent starts QEMU waiting for an incoming migration and reports its address, the
// source agent transfers memory to it, quits its QEMU at switchover, and the target instance —
// the same guest — takes over. The placement side (which instance moves where, replacement
// rows, publishing the one that took over) stays with the fleet reconciler; this decides only
// what the migration row says and what the agents are told.
import type { EventKind } from './events.js';
import type { InstanceStatus, NodeStatus, Workload } from './types.js';

export const MIGRATION_STATES = ['preparing', 'target_ready', 'transferring', 'switching', 'completed', 'failed', 'cancelled'] as const;
export type MigrationState = (typeof MIGRATION_STATES)[number];

export const MIGRATION_MODES = ['live', 'restart'] as const;
export type MigrationMode = (typeof MIGRATION_MODES)[number];

export const MIGRATION_TRIGGERS = ['drain', 'manual'] as const;
export type MigrationTrigger = (typeof MIGRATION_TRIGGERS)[number];

/** Limits of a move nobody tuned: QEMU's own default downtime limit, and ten minutes to finish. */
export interface MigrationLimits {
  downtimeLimitMs: number;
  deadlineMs: number;
}
export const MIGRATION_DEFAULTS: MigrationLimits = { downtimeLimitMs: 300, deadlineMs: 10 * 60_000 };

/** Open states: at most one open migration per instance (a unique index says so too). */
export const OPEN_MIGRATION_STATES: readonly MigrationState[] = ['preparing', 'target_ready', 'transferring', 'switching'];

export function isOpenMigration(state: MigrationState): boolean {
  return OPEN_MIGRATION_STATES.includes(state);
}

export interface MigrationStats {
  total_ms: number;
  downtime_ms: number;
  transferred_bytes: number;
}

export interface InstanceMigration {
  id: string;
  instanceId: string;
  deploymentId: string;
  sourceNodeId: string;
  targetNodeId: string;
  /** The instance row on the target: the replacement (restart) or the incoming guest (live). */
  targetInstanceId: string;
  mode: MigrationMode;
  trigger: MigrationTrigger;
  state: MigrationState;
  reason: string | null;
  /** Where the target QEMU listens for the incoming migration, as its agent reported it. */
  targetAddress: string | null;
  downtimeLimitMs: number;
  deadlineAt: Date;
  startedAt: Date;
  endedAt: Date | null;
  stats: MigrationStats | null;
}

/** What an agent reports about its side of a live migration, in the instance's heartbeat entry. */
export interface MigrationReport {
  migration_id: string;
  role: 'source' | 'target';
  state: 'ready' | 'transferring' | 'completed' | 'failed';
  /** Target, `ready`: the URI the source migrates to (e.g. tcp:127.0.0.1:41234). */
  address?: string | undefined;
  /** Source, `completed`: what QMP measured. */
  total_ms?: number | undefined;
  downtime_ms?: number | undefined;
  transferred_bytes?: number | undefined;
  reason?: string | undefined;
}

/** One side's instance row as the migration sees it. */
export interface MigrationSide {
  desired: 'running' | 'stopped';
  status: InstanceStatus;
  healthy: boolean;
  published: boolean;
  nodeStatus: NodeStatus;
  report: MigrationReport | null;
}

export interface MigrationFacts {
  /** Absent when the row is gone (removed after it stopped). */
  source?: MigrationSide | undefined;
  target?: MigrationSide | undefined;
}

/** What changes, as data: the shell writes it with an event in one transaction. */
export interface MigrationDecision {
  state: MigrationState;
  reason?: string;
  targetAddress?: string;
  stats?: MigrationStats;
  /** Withdraw the target instance: the move failed and the source keeps running. */
  stopTarget: boolean;
  /**
   * Withdraw the source instance too: the guest was lost. Its source quit at the switchover and
   * its target died before taking over, so neither side holds it; the deployment's replica
   * count boots a new one elsewhere. Present only when true.
   */
  stopSource?: true;
  /** Nodes whose desired state changed with this decision (their agents are told at once). */
  wake: string[];
  event: { kind: MigrationEventKind; data: Record<string, unknown> } | null;
}

export type MigrationEventKind = Extract<EventKind, `migration.${string}`>;

/** A `vm` workload moves live; everything else restarts elsewhere. */
export function migrationModeFor(workload: Workload): MigrationMode {
  return workload.driver === 'vm' ? 'live' : 'restart';
}

/** The mode of a move asked for by a person: live only for a workload that can move live; default its own. */
export function chooseMigrationMode(workload: Workload, requested: MigrationMode | undefined): { ok: true; mode: MigrationMode } | { ok: false } {
  const own = migrationModeFor(workload);
  if (requested === 'live' && own !== 'live') return { ok: false };
  return { ok: true, mode: requested ?? own };
}

/** Only a report about this migration counts: an older one may linger on the row. */
function reportOf(side: MigrationSide | undefined, migrationId: string, role: MigrationReport['role']): MigrationReport | null {
  const report = side?.report;
  return report && report.migration_id === migrationId && report.role === role ? report : null;
}

/**
 * The next state of one migration from the facts now. Level-triggered: called twice on the
 * same facts it decides the same; null when nothing changes.
 */
export function decideMigration(m: InstanceMigration, facts: MigrationFacts, now: Date): MigrationDecision | null {
  if (!isOpenMigration(m.state)) return null;
  const { source, target } = facts;
  const fail = (reason: string): MigrationDecision => ({
    state: 'failed',
    reason,
    stopTarget: target !== undefined && target.desired === 'running',
    wake: [m.sourceNodeId, m.targetNodeId],
    event: { kind: 'migration.failed', data: failedData(m, reason) },
  });
  /** After the transfer the target held the only copy of the guest: losing it loses the guest. */
  const lost = (why: string): MigrationDecision => {
    const reason = `the guest was lost: ${why} after the transfer completed, and the source had quit at the switchover`;
    return { ...fail(reason), stopSource: true, event: { kind: 'migration.failed', data: { ...failedData(m, reason), guest_lost: true } } };
  };

  // The target took over (the fleet reconciler published it once healthy): done, whatever the mode.
  if (target && target.desired === 'running' && target.published) {
    const stats = m.stats ?? statsOf(reportOf(source, m.id, 'source'));
    return {
      state: 'completed',
      ...(stats ? { stats } : {}),
      stopTarget: false,
      // Neither side is told about the move any more.
      wake: m.mode === 'live' ? [m.sourceNodeId, m.targetNodeId] : [],
      event: { kind: 'migration.completed', data: { ...baseData(m), ...(stats ?? {}) } },
    };
  }
  if (!target || target.desired === 'stopped') return fail('the target instance was withdrawn');
  // The source's account first: when a transfer breaks, both sides report, and the source's
  // reason (its agent restarted, the deadline) is usually the cause, the target's the effect.
  const sourceReport = m.mode === 'live' ? reportOf(source, m.id, 'source') : null;
  if (sourceReport?.state === 'failed') return fail(`the transfer failed: ${sourceReport.reason ?? 'no reason given'}`);
  const transferred = m.mode === 'live' && (sourceReport?.state === 'completed' || m.state === 'switching');
  const targetFailed = `the target instance failed${target.report?.reason ? `: ${target.report.reason}` : ''}`;
  if (target.status === 'failed') {
    if (!transferred) return fail(targetFailed);
    // The source holds the guest paused as it handed it over (its agent reports it `starting`)
    // unless its QEMU has quit: then it resumes there, else the guest is lost.
    if (source && source.desired === 'running' && source.status !== 'stopped' && source.nodeStatus !== 'down') {
      const reason = `${targetFailed} after the transfer completed: the guest resumes on the source, which held it paused`;
      return { ...fail(reason), event: { kind: 'migration.failed', data: { ...failedData(m, reason), source_resumes: true } } };
    }
    return lost(targetFailed);
  }
  if (m.mode === 'restart') return null; // the fleet reconciler times a replacement out

  if (target.nodeStatus === 'down') return transferred ? lost('the target node went down') : fail('the target node went down');
  // Once transferred, the target holds the only copy of the guest: no deadline withdraws it. It
  // takes over when its agent reports it serving (the fleet reconciler publishes it).
  if (!transferred && now.getTime() > m.deadlineAt.getTime()) return fail(`not completed by its deadline (${m.deadlineAt.toISOString()})`);
  const targetReport = reportOf(target, m.id, 'target');
  if (!transferred && targetReport?.state === 'failed') return fail(`the target could not receive: ${targetReport.reason ?? 'no reason given'}`);
  if (!transferred) {
    if (!source || source.desired === 'stopped') return fail('the source instance was stopped before the transfer');
    if (source.nodeStatus === 'down') return fail('the source node went down before the transfer completed');
  }

  if (m.state === 'preparing') {
    if (targetReport?.state !== 'ready' || !targetReport.address) return null;
    return {
      state: 'target_ready',
      targetAddress: targetReport.address,
      stopTarget: false,
      wake: [m.sourceNodeId],
      event: { kind: 'migration.target_ready', data: { ...baseData(m), address: targetReport.address } },
    };
  }
  if (transferred && m.state !== 'switching') {
    const stats = statsOf(sourceReport);
    return {
      state: 'switching',
      ...(stats ? { stats } : {}),
      stopTarget: false,
      wake: [],
      event: { kind: 'migration.switching', data: { ...baseData(m), ...(stats ?? {}) } },
    };
  }
  if (m.state === 'target_ready' && sourceReport?.state === 'transferring') {
    return { state: 'transferring', stopTarget: false, wake: [], event: null };
  }
  return null;
}

function statsOf(report: MigrationReport | null): MigrationStats | null {
  if (!report || report.state !== 'completed') return null;
  if (report.total_ms === undefined || report.downtime_ms === undefined || report.transferred_bytes === undefined) return null;
  return { total_ms: report.total_ms, downtime_ms: report.downtime_ms, transferred_bytes: report.transferred_bytes };
}

function baseData(m: InstanceMigration): Record<string, unknown> {
  return {
    migration_id: m.id,
    mode: m.mode,
    from_node: m.sourceNodeId,
    to_node: m.targetNodeId,
    target_instance: m.targetInstanceId,
  };
}

function failedData(m: InstanceMigration, reason: string): Record<string, unknown> {
  return { ...baseData(m), from_state: m.state, reason };
}

/**
 * What the agents are told about an open live migration: the target hosts an incoming guest
 * from the start; the source, once the target listens, migrates to its address, and after the
 * transfer keeps its instance down (its guest now runs on the target) until it is withdrawn.
 */
export function desiredMigrationFor(m: InstanceMigration, instanceId: string): DesiredMigration | null {
  if (m.mode !== 'live' || !isOpenMigration(m.state)) return null;
  if (instanceId === m.targetInstanceId) return { id: m.id, role: 'target' };
  if (instanceId === m.instanceId && m.state !== 'preparing' && m.targetAddress) {
    return { id: m.id, role: 'source', address: m.targetAddress, downtime_limit_ms: m.downtimeLimitMs, deadline: m.deadlineAt.toISOString() };
  }
  return null;
}

export interface DesiredMigration {
  id: string;
  role: 'source' | 'target';
  address?: string;
  downtime_limit_ms?: number;
  deadline?: string;
}
