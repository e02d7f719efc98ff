// The event catalog: every kind of event drydock appends to its log, what it records, and the
// shape of its `data`. Like the error catalog, it is the one list a reader, the dashboard or an
// audit script can rely on; test/domain/event-catalog.test.ts fails when code emits a kind that
// is not here. Kinds are `<subject>.<what happened>`, past tense, and never change once shipped:
// stored events, webhooks and `--kind` filters name them.
import type { ArtifactLifecycle } from './artifact-lifecycle.js';
import type { MigrationMode, MigrationState, MigrationStats } from './instance-migration.js';
import type { InstallPhase } from './protocol.js';
import type { BreakerDecision } from './rollout/human-actions.js';
import type { HookPoint } from './rollout/hooks.js';
import type { RolloutStatus } from './rollout/model.js';
import type { NodeRole, NodeStatus } from './types.js';
import type { WebhookFormat } from './webhooks.js';

/** What each kind of event records, one sentence each. */
export const EVENT_CATALOG = {
  'node.registered': 'An agent registered a node the operator did not know.',
  'node.reregistered': 'A known node registered again (agent restart or re-enrolment); `changes` lists identity fields that moved.',
  'node.reregistration_refused': 'A registration for a known node came without its credential and was refused; the only write, so an attack is visible.',
  'node.re_enrolled': "An admin voided a node's credential so its next registration issues a new one.",
  'node.decommissioned': 'A cordoned, drained node was deleted: it leaves the fleet and its credential is void (its agent is refused).',
  'node.cordoned': 'A node stopped taking new instances.',
  'node.enabled': 'A node was uncordoned, its drain ended, and parked pinned instances restarted.',
  'node.drain_started': 'A node began moving its instances elsewhere.',
  'node.drained': 'A drain finished: nothing the node ran needs it any more.',
  'node.drain_failed': 'A drain passed its deadline with instances still on the node.',
  'node.instances_restarted': 'The instances a restart drain stopped on a node started again on that same node, after its install (drain.mode: restart).',
  'node.components_pruned': 'An agent removed old version directories of a component after a completed rollout, keeping the current, the rollback and the newest versions.',
  'node.down': 'A node missed heartbeats for longer than the liveness timeout.',
  'node.up': 'A node that was down is heard again.',
  'node.component_version_set': "A node's desired version of a component changed (by a person or a rollout).",
  'node.install_started': 'The agent began installing a component version.',
  'node.install_completed': 'The agent installed a component version and it passed its checks.',
  'node.install_failed': 'The agent could not install a component version.',
  'node.reverted': 'The agent went back to the previous version after the new one failed its checks.',
  'instance.placed': 'An instance was placed on a node.',
  'instance.replacement_placed': 'A replacement for a moving instance was placed on its target node.',
  'instance.published': 'An instance became healthy and now serves traffic (an endpoint).',
  'instance.withdrawn': 'An instance stopped serving traffic.',
  'instance.migration_started': 'An instance began moving to another node (drain or manual).',
  'instance.migration_completed': 'A replacement became healthy and took over from the instance it replaces.',
  'instance.migration_failed': 'A replacement failed or was not healthy in time; the original keeps running.',
  'migration.target_ready': 'The target of a live migration is listening for the guest; the source is told to transfer it.',
  'migration.switching': "A live migration's transfer completed: the guest runs on the target, the source QEMU quit; the target takes over as endpoint.",
  'migration.completed': 'A move finished: the target instance took over (with the transfer\'s total, downtime and bytes for a live one).',
  'migration.failed': 'A move failed (target died or refused, transfer failed, deadline, a side went down); the source keeps running and the target is withdrawn. With source_resumes the target died after the transfer and the source, which held the guest paused, resumes it; with guest_lost the source no longer held it either: both are withdrawn and a new replica boots elsewhere.',
  'deployment.created': 'A deployment was created.',
  'deployment.updated': 'A deployment was applied with a changed spec (replicas, min_available); `changes` lists each field that moved.',
  'deployment.deletion_requested': 'A person deleted a deployment: its instances are withdrawn and stopped, then the deployment is removed.',
  'deployment.deleted': 'A deleted deployment has no instance left and is gone (its name is free again).',
  'artifact.published': 'An artifact was uploaded, or an os-image published by reference to an OCI registry (as a draft).',
  'artifact.blessed': 'An artifact moved from draft to blessed.',
  'artifact.promoted': 'An artifact became the live version of its component.',
  'artifact.demoted': 'A live artifact stepped back to blessed because another version of its component was promoted.',
  'artifact.archived': 'An artifact was archived: no node may install it any more.',
  'artifact.quarantined': "A version was quarantined because a rollout's circuit breaker rolled it back.",
  'artifact.quarantine_cleared': 'A person cleared a quarantine, so the version may be rolled out again.',
  'compat.updated': 'The component compatibility rules were replaced.',
  'policy.set': 'A rollout policy was created or replaced.',
  'policy.deleted': 'A rollout policy was deleted.',
  'fleet.liveness_held': 'The operator could not hear every heartbeat in time, so nobody is marked down for it.',
  'fleet.liveness_resumed': 'The operator hears heartbeats in time again.',
  'fleet.region_silent': 'Too much of a region went silent at once to mark its nodes down one by one.',
  'fleet.region_silence_ended': 'A silent region is heard again.',
  'rollout.created': 'A rollout was planned and stored.',
  'rollout.preflight_overridden': 'A failing preflight check was overridden when the rollout was created.',
  'rollout.approval_requested': 'A rollout waits for a person: approval of its plan, a decision after its breaker tripped, or a region gate.',
  'rollout.gate_reached': 'A rollout with gateBetweenRegions finished its regions so far and waits for a person before the next region.',
  'rollout.approved': 'A person approved the plan (with any edits).',
  'rollout.rejected': 'A person rejected the plan, or stopped the rollout at a region gate.',
  'rollout.started': 'A rollout began starting nodes.',
  'rollout.paused': 'A person paused a rollout: no new node starts.',
  'rollout.resumed': 'A paused rollout, or one waiting for a breaker decision, runs again.',
  'rollout.abort_requested': 'A person asked to abort: nodes in flight finish, nothing new starts.',
  'rollout.aborted': 'A rollout ended aborted.',
  'rollout.rolling_back': 'A rollout began returning its completed nodes to their previous version.',
  'rollout.rolled_back': 'A rollback finished.',
  'rollout.waiting_for_window': 'The next batch waits for the maintenance window to open.',
  'rollout.batch_started': 'A batch of nodes began.',
  'rollout.batch_completed': 'Every node of a batch finished (done or failed).',
  'rollout.node_started': 'A rollout began upgrading (or rolling back) one node.',
  'rollout.node_completed': 'One node reached its target version and passed its checks.',
  'rollout.node_failed': 'One node failed its upgrade or rollback.',
  'rollout.version_unavailable': "A version a node should go back to is archived or gone; the node's desired state is left as it is.",
  'rollout.circuit_breaker_tripped': 'Too many nodes failed: the rollout stops and waits for a decision.',
  'rollout.schema_expanded': "A control-plane rollout applied its target build's expand (pre) migrations before its first node.",
  'rollout.schema_contracted': "A control-plane rollout applied its target build's contract (post) migrations after its last node; it can no longer be rolled back.",
  'rollout.schema_step_failed': "A control-plane rollout could not apply its target build's migrations (retried; the rollout waits).",
  'rollout.waiting_for_replicas': 'A control-plane rollout holds its next batch: starting it would leave a region with fewer ready operator replicas than minAvailablePerRegion.',
  'rollout.compat_blocked': 'A batch would break the compatibility matrix as the fleet runs now: the rollout paused before it (resume after fixing).',
  'rollout.traffic_switched': 'Blue-green: every new operator replica is ready; the load balancer moved from the old replicas to them (the old ones keep running until retireAfter).',
  'rollout.previous_retired': 'Blue-green: the old operator replicas were told to stop; from now on a rollback reinstalls them.',
  'rollout.blue_green_abandoned': 'Blue-green: the new side is incomplete (a node failed, or the rollout was aborted before the switch): the old replicas keep serving and the new ones stop.',
  'rollout.completed': 'Every node of a rollout is done.',
  'rollout.failed': 'A rollout ended with nodes that did not reach the target version.',
  'rollout.hook_started': 'A hook run began: on the node (preNode, postNode; reported by its agent) or on the operator leader (preRollout, postRollout).',
  'rollout.hook_completed': 'A hook run succeeded (exit code 0, or a 2xx answer to its webhook).',
  'rollout.hook_failed': 'A hook run failed: a non-zero exit, a non-2xx answer, its timeout (the process group is killed), or no result in time.',
  'webhook.created': 'An admin subscribed a URL to event kinds (recorded as scheme, host and port; the secret never).',
  'webhook.deleted': 'An admin removed a webhook subscription and its deliveries.',
} as const satisfies Record<string, string>;

export type EventKind = keyof typeof EVENT_CATALOG;

type Direction = 'forward' | 'rollback';
type Hostname = { hostname: string };
type HumanActionData = { from: RolloutStatus; regions?: string[] } | { decision: BreakerDecision };

/** The `data` of each kind of event, as it is stored (snake_case JSON). */
export interface EventData {
  'node.registered': Hostname & { region: string; role: NodeRole; agent_version: string };
  'node.reregistered': Hostname & {
    region: string;
    agent_version: string;
    proof: 'credential' | 're-enrolled' | 'open operator';
    credential: 'kept' | 'issued';
    changes: Record<string, { from: unknown; to: unknown }>;
  };
  'node.reregistration_refused': Hostname & { reason: string; claimed: { region: string; role: NodeRole; labels: Record<string, string>; max_instances: number; agent_version: string } };
  'node.re_enrolled': Hostname & { reason: string | null };
  'node.decommissioned': Hostname & { region: string };
  'node.cordoned': Hostname;
  'node.enabled': Hostname & { restarted: string[] };
  /** Plus `moves` and `pinned` when a person drains the node through the API. */
  'node.drain_started': Hostname & { force: boolean; timeout_ms: number; mode?: 'restart'; moves?: number; pinned?: string[] };
  'node.drained': Hostname;
  'node.drain_failed': { reason: 'timeout'; remaining: string[] };
  'node.instances_restarted': Hostname & { restarted: string[] };
  /** `kept`: the versions left on disk; `pruned`: the version directories removed. */
  'node.components_pruned': { component: string; version: string; pruned: string[]; kept: string[] };
  'node.down': Hostname & { from: NodeStatus; to: NodeStatus };
  'node.up': Hostname & { from: NodeStatus; to: NodeStatus };
  /** `artifact_id` and `force` only when a person sets it through the API. */
  'node.component_version_set': Hostname & { component: string; version: string | null; previous_version: string | null; rollback: boolean; artifact_id?: string; force?: boolean; keep_previous?: true; prestage?: true };
  'node.install_started': InstallEventData;
  'node.install_completed': InstallEventData;
  'node.install_failed': InstallEventData;
  'node.reverted': InstallEventData;
  'instance.placed': { deployment_id: string; replaces: null };
  'instance.replacement_placed': { deployment_id: string; replaces: string };
  'instance.published': { deployment_id: string };
  'instance.withdrawn': { deployment_id: string };
  /** `replacement` and `force` for a manual move; a drain's replacement is placed afterwards. */
  'instance.migration_started': { from_node: string; to_node: string; reason: 'drain' | 'manual'; replacement?: string; force?: boolean; migration_id?: string; mode?: MigrationMode };
  'instance.migration_completed': { from_instance: string; from_node: string; to_node: string };
  'instance.migration_failed': { replacement: string; target_node: string; reason: string };
  'migration.target_ready': MigrationEventData & { address: string };
  'migration.switching': MigrationEventData & Partial<MigrationStats>;
  'migration.completed': MigrationEventData & Partial<MigrationStats>;
  'migration.failed': MigrationEventData & { from_state: MigrationState; reason: string; guest_lost?: true; source_resumes?: true };
  'deployment.created': { deployment_id: string; name: string; replicas: number };
  'deployment.updated': { deployment_id: string; name: string; changes: Record<string, { from: unknown; to: unknown }> };
  'deployment.deletion_requested': { deployment_id: string; name: string; instances: number };
  'deployment.deleted': { deployment_id: string; name: string };
  'artifact.published': { artifact_id: string; component: string; version: string; kind: string; sha256: string; size: number; signed: boolean; key_id: string | null; reboot?: boolean; ref?: string };
  'artifact.blessed': LifecycleEventData;
  'artifact.promoted': LifecycleEventData;
  'artifact.archived': LifecycleEventData;
  'artifact.demoted': { artifact_id: string; component: string; replaced_by: string };
  'artifact.quarantined': { component: string; version: string; rollout_id: string; reason: string };
  'artifact.quarantine_cleared': { component: string; version: string; reason: string; rollout_id: string | null };
  /** The number of rules now in force. */
  'compat.updated': { rules: number };
  'policy.set': { name: string; created: boolean; policy: unknown };
  'policy.deleted': { name: string };
  'fleet.liveness_held': { condition: 'operator'; held: number; reason: string; heard_lag_ms: number; listening_for_ms: number | null; deaf_ms: number };
  'fleet.liveness_resumed': { condition: 'operator' };
  'fleet.region_silent': { condition: string; region: string; silent: number; nodes: number; held: number; threshold: number; min_nodes: number };
  'fleet.region_silence_ended': { condition: string; region: string };
  'rollout.created': { name: string; component: string; version: string; batches: number; policies: string[] };
  'rollout.preflight_overridden': { check: string; message: string };
  'rollout.approval_requested':
    | { kind: 'plan'; distinct_approver: boolean; policies: string[] }
    | { kind: 'continuation' | 'gate'; options: readonly string[]; reason: string };
  'rollout.gate_reached': { batch: number; completed_regions: string[]; next_regions: string[]; summary: string };
  /** `edits`: the `path=value` edits re-planned before the approval counted. */
  'rollout.approved': { edits: string[] };
  'rollout.rejected': { reason: string };
  'rollout.started': Record<string, never>;
  'rollout.paused': { from: RolloutStatus };
  'rollout.resumed': HumanActionData;
  'rollout.abort_requested': HumanActionData;
  /** `from` when a person aborted a rollout nothing had started in; `done` when the reconciler ended it. */
  'rollout.aborted': { from: RolloutStatus } | { done: number };
  'rollout.rolling_back': HumanActionData;
  'rollout.rolled_back': { rolled_back: number; failed: string[]; regions?: string[] };
  /** `next_open`: ISO time the window opens next, null when it never does. */
  'rollout.waiting_for_window': { next_open: string | null };
  'rollout.batch_started': { batch: number; nodes: string[] };
  'rollout.batch_completed': { batch: number; done: number; failed: number };
  'rollout.node_started': Hostname & { batch: number; direction: Direction; version: string | null; downgrade?: true; from_version?: string | null };
  'rollout.node_completed': Hostname & { batch: number; direction: Direction };
  'rollout.node_failed': Hostname & { batch: number; direction: Direction; reason: string | null };
  /** `component` when the store found the version gone at apply time. */
  'rollout.version_unavailable': Hostname & { version: string | null; reason: string; component?: string };
  'rollout.circuit_breaker_tripped': { reason: string; failed_nodes: string[] };
  'rollout.schema_expanded': { component: string; version: string; applied: string[] };
  'rollout.schema_contracted': { component: string; version: string; applied: string[] };
  'rollout.schema_step_failed': { phase: 'pre' | 'post'; version: string; reason: string };
  'rollout.waiting_for_replicas': { batch: number; reason: string };
  'rollout.compat_blocked': { batch: number; violations: string[] };
  'rollout.traffic_switched': { from_versions: string[]; to_version: string; retire_after_ms: number };
  'rollout.previous_retired': { nodes: string[]; versions: string[] };
  'rollout.blue_green_abandoned': { reason: string };
  'rollout.completed': { done: number; failed: 0 };
  'rollout.failed': { reason: string; failed_nodes: string[]; done: number; failed: number };
  'rollout.hook_started': HookEventData;
  'rollout.hook_completed': HookEventData & { exit_code: number | null; duration_ms: number | null; output_tail: string };
  /** `duration_ms` absent when the operator gave up on a run that never reported. */
  'rollout.hook_failed': HookEventData & { exit_code: number | null; duration_ms?: number | null; reason?: string; output_tail: string };
  'webhook.created': { webhook_id: string; url: string; events: string[]; format: WebhookFormat };
  'webhook.deleted': { webhook_id: string };
}

/** Which run: its deterministic id, point, index in the point's list, attempt, and the command or webhook. */
interface HookEventData {
  hook_id: string;
  point: HookPoint;
  index: number;
  attempt: number;
  hook: string;
}

interface MigrationEventData {
  migration_id: string;
  mode: MigrationMode;
  from_node: string;
  to_node: string;
  target_instance: string;
}

interface InstallEventData {
  component: string;
  version: string;
  previous_version: string | null;
  phase: InstallPhase;
  reason?: string;
}

interface LifecycleEventData {
  artifact_id: string;
  component: string;
  version: string;
  from: ArtifactLifecycle;
  to: ArtifactLifecycle;
}

// The catalog and the data map name the same kinds: a kind missing from either fails to compile.
type MissingData = Exclude<EventKind, keyof EventData>;
type MissingDescription = Exclude<keyof EventData, EventKind>;
const _sameKinds: [MissingData, MissingDescription] extends [never, never] ? true : never = true;

type Subject<K extends string> = K extends `${infer S}.${string}` ? S : never;

/** `EVENT.node.registered === 'node.registered'`: a typo is a compile error, and the text stays greppable. */
export type EventConstants = {
  readonly [S in Subject<EventKind>]: { readonly [K in EventKind as K extends `${S}.${infer Name}` ? Name : never]: K };
};

export const EVENT: EventConstants = (() => {
  const bySubject: Record<string, Record<string, string>> = {};
  for (const kind of Object.keys(EVENT_CATALOG)) {
    const dot = kind.indexOf('.');
    (bySubject[kind.slice(0, dot)] ??= {})[kind.slice(dot + 1)] = kind;
  }
  return bySubject as unknown as EventConstants;
})();

export function isEventKind(kind: string): kind is EventKind {
  return Object.hasOwn(EVENT_CATALOG, kind);
}
