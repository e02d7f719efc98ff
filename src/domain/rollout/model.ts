import type { InstallPhase } from '../protocol.js';
import type { DrainState, NodeStatus } from '../types.js';
import type { HookAction } from './hooks.js';
import type { RolloutSpec } from './spec.js';

export const ROLLOUT_STATUSES = [
  'awaiting_approval',
  'running',
  'paused',
  'waiting_for_window',
  'awaiting_decision',
  'aborting',
  'rolling_back',
  'completed',
  'aborted',
  'rolled_back',
  'rejected',
  'failed',
] as const;
export type RolloutStatus = (typeof ROLLOUT_STATUSES)[number];

/** Statuses a rollout never leaves. */
export const TERMINAL_ROLLOUT_STATUSES: readonly RolloutStatus[] = ['completed', 'aborted', 'rolled_back', 'rejected', 'failed'];

/** Statuses in which a rollout holds its nodes (DESIGN.md §8.1: one active rollout per node). */
export const ACTIVE_ROLLOUT_STATUSES: readonly RolloutStatus[] = ROLLOUT_STATUSES.filter((s) => !TERMINAL_ROLLOUT_STATUSES.includes(s));

/** Statuses the reconciler acts on: active, and approved (an unapproved rollout waits for a human). */
export const RECONCILED_ROLLOUT_STATUSES: readonly RolloutStatus[] = ACTIVE_ROLLOUT_STATUSES.filter((s) => s !== 'awaiting_approval');

// pre_node_hooks / post_node_hooks: the node's preNode hooks run (after cordon and drain, before
// the install) and its postNode hooks (after the health gate, before enable); only when the spec
// has some (hooks.ts).
// staging: a reboot-class component (an OS image) is downloaded and staged into the node's
// inactive slot while the node still serves, before the cordon (DESIGN.md §12).
export const TASK_STATES = ['pending', 'staging', 'cordoned', 'draining', 'pre_node_hooks', 'installing', 'verifying', 'post_node_hooks', 'done', 'failed', 'rolled_back', 'skipped'] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const IN_FLIGHT: readonly TaskState[] = ['staging', 'cordoned', 'draining', 'pre_node_hooks', 'installing', 'verifying', 'post_node_hooks'];
export const TERMINAL: readonly TaskState[] = ['done', 'failed', 'rolled_back', 'skipped'];

/** One node inside a rollout. Its id is `${rolloutId}/${nodeId}`: a retried step is the same step. */
export interface RolloutTask {
  id: string;
  nodeId: string;
  hostname: string;
  region: string;
  batch: number;
  state: TaskState;
  direction: 'forward' | 'rollback';
  /** The component version before the rollout: what rollback returns to (null: none installed). */
  fromVersion: string | null;
  stateSince: Date;
  healthySince: Date | null;
  finishedAt: Date | null;
  /** Why the task failed, or why it was skipped (a skipped task always says why). */
  lastError: string | null;
  /** Whether this task cordoned the node (and so must enable it again). */
  cordonedByUs: boolean;
  /**
   * Several targets (spec `targets`): which of the task's components is being installed, as an
   * index into its order (the targets going forward, reversed going back; absent: 0).
   */
  step?: number;
  /** Several targets: the version of every target component but the first before the rollout (null: none). */
  fromVersions?: Readonly<Record<string, string | null>> | null;
}

export interface Rollout {
  id: string;
  spec: RolloutSpec;
  status: RolloutStatus;
  drainMode: 'migrate' | 'restart' | 'none';
  /** -1 before the first batch starts. */
  currentBatch: number;
  batchCount: number;
  batchStartedAt: Date | null;
  batchFinishedAt: Date | null;
  /** Failures before this instant no longer count toward maxConsecutiveFailures (a human said continue). */
  breakerResetAt: Date | null;
  /** The last batch whose region gate a person approved (-1: none); gateBetweenRegions only. */
  gatePassedBatch: number;
  /** When the target's expand migrations were applied (migrations: auto; null: not yet). */
  schemaPreAppliedAt: Date | null;
  /** When the target's contract migrations were applied (after it, no rollback). */
  schemaPostAppliedAt: Date | null;
  /** A rollback limited to these regions returns only their completed nodes (null: every region). */
  rollbackRegions: string[] | null;
  /** Blue-green: when the load balancer moved to the new replicas (null: the old ones serve). */
  trafficSwitchedAt: Date | null;
  /** Blue-green: when the old replicas were told to stop (after it, a rollback reinstalls them). */
  previousRetiredAt: Date | null;
  /**
   * Target components whose artifact reboots the node (an OS image): staged on each node before
   * its cordon. Read from the artifacts by the reconciler (absent: none).
   */
  prestage?: readonly string[];
}

/** What the rollout needs to know about a node, as of the snapshot. */
export interface NodeFacts {
  id: string;
  status: NodeStatus;
  cordoned: boolean;
  drainState: DrainState | null;
  drainMessage: string;
  /** The target component's version the node reports running. */
  version: string | undefined;
  /** The latest install report for the target component. */
  install: { version: string; phase: InstallPhase; reason?: string | undefined; retryable?: boolean | undefined; at: Date } | undefined;
  /** Every instance on the node is healthy (vacuously true for an empty node). */
  instancesHealthy: boolean;
  /** Several targets: the version and latest install report of each target component (the first one too). */
  components?: Readonly<Record<string, { version: string | undefined; install: NodeFacts['install'] }>>;
}

export type NodeCommand =
  | { kind: 'cordon'; nodeId: string }
  | { kind: 'drain'; nodeId: string; timeoutMs: number; force: boolean; mode?: 'restart' }
  /** Starts again, on the node, the instances its restart drain stopped there. */
  | { kind: 'restart_instances'; nodeId: string }
  | {
      kind: 'set_version';
      nodeId: string;
      component: string;
      version: string | null;
      /** Lets the agent install a lower version: a rollback, or a downgrade the spec allows. */
      rollback: boolean;
      /** A forward install of a lower version (spec allowDowngrade); absent otherwise. */
      downgrade?: true;
      /** Blue-green: the new version starts beside the running one, which keeps running (absent: it replaces it). */
      keepPrevious?: true;
      /** Download and stage it only (a reboot-class image, before the drain); the install is asked for again after. */
      prestage?: true;
    }
  /** Blue-green: the version a node kept running beside the new one stops. */
  | { kind: 'retire_previous'; nodeId: string; component: string }
  | { kind: 'enable'; nodeId: string };

export interface RolloutEvent {
  kind: string;
  nodeId?: string;
  data: Record<string, unknown>;
}

export interface RolloutDecision {
  /** Fields of the rollout to change (empty when none). */
  rollout: Partial<Omit<Rollout, 'id' | 'spec'>>;
  /** Task changes, each guarded by the state it was decided from. */
  tasks: { id: string; from: TaskState; changes: Partial<Omit<RolloutTask, 'id' | 'nodeId'>> }[];
  commands: NodeCommand[];
  events: RolloutEvent[];
  /** Open a continuation approval (the breaker tripped). */
  continuation?: { reason: string; failedNodes: string[] };
  /** Open a region gate approval before `batch` (gateBetweenRegions). */
  gate?: { batch: number; completed: string[]; next: string[]; summary: string };
  /** Why the next batch waits for the fleet (not for a person): e.g. too few ready operator replicas. */
  waitingFor?: string;
  /** Apply the target build's schema migrations of this phase now (migrations: auto); the rollout waits for it. */
  schema?: 'pre' | 'post';
  /** When to look again at the latest, if nothing wakes the rollout first. */
  requeueAfterMs: number | null;
  /** Hook runs to ask for (node hooks: into the node's desired state; rollout hooks: on the leader) or give up on. */
  hooks?: HookAction[];
}
