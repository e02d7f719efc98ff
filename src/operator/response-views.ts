// Response schemas of the routes whose bodies are not one of the resource views in schemas.ts.
// They are loose objects: they name (and check) the fields a client relies on, and let the rest
// through unchanged, so a field added to a view never disappears from a response by accident.
// Timestamps are left out of the checked fields: some are Dates until they are serialized.
import { z } from 'zod';
import { MIGRATION_MODES, MIGRATION_STATES } from '../domain/instance-migration.js';
import { ROLLOUT_STATUSES } from '../domain/rollout/model.js';

/**
 * A loose object typed as a plain one: at run time every field not named passes through, while
 * TypeScript checks a handler's return value against the named fields without demanding an
 * index signature (which the store's and the protocol's interfaces do not have).
 */
export const looseView = <S extends z.ZodRawShape>(shape: S) => z.looseObject(shape) as unknown as z.ZodObject<S>;
/** An object whose fields the route does not check (a spec, a plan): documented as an object. */
const anyObject = () => z.looseObject({}) as unknown as z.ZodType<object>;

/** A response that is not JSON: Prometheus text, Server-Sent Events, artifact bytes. */
export const TextBody = (description: string, contentType: string) => ({ description, content: { [contentType]: { schema: z.string() } } });

export const HealthView = looseView({
  status: z.enum(['healthy', 'degraded']).describe('"healthy" only when the replica is ready'),
  ready: z.boolean(),
  reason: z.string(),
  leader: z.boolean(),
  version: z.string(),
  engine: z.enum(['pglite', 'postgres']),
  uptime_s: z.number(),
});
export const LiveView = z.object({ status: z.literal('live') });
export const ReadyView = looseView({ status: z.literal('ready'), reason: z.string() });
export const NotReadyView = looseView({ status: z.literal('not_ready'), reason: z.string() });

export const InstanceHealthView = looseView({
  instance_id: z.string(),
  status: z.string().describe('healthy or unhealthy'),
  healthy: z.boolean(),
  state: z.string(),
  node_id: z.string(),
  url: z.string().nullable(),
});

export const MigrationStarted = looseView({
  instance_id: z.string(),
  replacement_id: z.string(),
  migration_id: z.string(),
  mode: z.enum(MIGRATION_MODES),
  from_node: z.string(),
  to_node: z.string(),
  to_hostname: z.string(),
  status: z.literal('migrating'),
});

export const MigrationView = looseView({
  id: z.string(),
  instance_id: z.string(),
  source_node_id: z.string(),
  target_node_id: z.string(),
  target_instance_id: z.string(),
  mode: z.enum(MIGRATION_MODES),
  state: z.enum(MIGRATION_STATES),
});

export const DeploymentHealthView = looseView({
  status: z.enum(['healthy', 'degraded', 'down']),
  deployment_id: z.string(),
  name: z.string(),
  replicas: z.number().int(),
  min_available: z.number().int(),
  healthy_instances: z.number().int(),
});

export const DesiredComponentView = looseView({
  version: z.string(),
  artifact_id: z.string(),
  sha256: z.string(),
  rollback: z.boolean(),
  disruptive: z.boolean(),
});
export const NodeComponentsView = z.record(z.string(), DesiredComponentView).describe('component name → what the node should run');
export const NodeComponentSetView = looseView({ hostname: z.string(), version: z.string().optional(), desired: DesiredComponentView.optional() });

export const RegisterReply = looseView({
  node_id: z.string(),
  heartbeat_interval_ms: z.number().int(),
  node_credential: z.string().nullable().optional().describe('present when the operator checks tokens: send it back in x-drydock-node-credential'),
});
export const DesiredStateView = looseView({
  node_id: z.string(),
  generation: z.number().int(),
  draining: z.boolean(),
  instances: z.array(looseView({ id: z.string(), deployment_id: z.string(), desired: z.enum(['running', 'stopped']) })),
  components: anyObject(),
});

export const EventView = looseView({
  id: z.number().int(),
  at: z.string(),
  kind: z.string(),
  actor: z.string(),
  rollout_id: z.string().nullable(),
  node_id: z.string().nullable(),
  instance_id: z.string().nullable(),
  data: anyObject(),
});

const RolloutCounters = looseView({ total: z.number().int(), done: z.number().int(), failed: z.number().int(), in_flight: z.number().int() });
export const RolloutSummaryView = looseView({
  id: z.string(),
  name: z.string(),
  status: z.enum(ROLLOUT_STATUSES),
  component: z.string(),
  version: z.string(),
  current_batch: z.number().int(),
  batch_count: z.number().int(),
  created_by: z.string(),
  counters: RolloutCounters.optional(),
});
export const ApprovalView = looseView({
  id: z.string(),
  rollout_id: z.string(),
  kind: z.enum(['plan', 'continuation', 'gate']),
  status: z.enum(['pending', 'approved', 'rejected', 'decided', 'cancelled']),
  options: z.array(z.string()),
  requested_by: z.string(),
});
export const RolloutDetailView = RolloutSummaryView.extend({
  spec: anyObject(),
  batches: z.array(looseView({ index: z.number().int(), canary: z.boolean(), nodes: z.array(looseView({ node_id: z.string(), hostname: z.string(), state: z.string() })) })),
  tasks: z.array(anyObject()).readonly(),
  plan: anyObject(),
  preflight: anyObject(),
  approvals: z.array(ApprovalView).readonly(),
});
export const RolloutPlanView = looseView({ spec: anyObject(), policies: z.array(z.unknown()), plan: anyObject(), preflight: anyObject() }).describe('the dry run: the effective spec, the policies that strengthened it, the batches and the preflight checks');

export const DriftView = looseView({
  drift: z.boolean(),
  expected: z.record(z.string(), z.string()).describe('component → the version its last completed rollout set'),
  nodes: z.array(looseView({ node_id: z.string(), hostname: z.string(), component: z.string(), expected: z.string(), actual: z.string().nullable() })),
});
export const CompatView = z.object({
  rules: z.array(looseView({ component: z.string(), range: z.string(), requires_component: z.string(), requires_range: z.string() })),
});

export const PolicyView = looseView({ name: z.string(), policy: anyObject(), created_by: z.string(), updated_by: z.string() });
export const PolicyDeleted = z.object({ name: z.string(), deleted: z.boolean() });

export const QuarantineView = looseView({
  id: z.number().int(),
  component: z.string(),
  version: z.string(),
  rollout_id: z.string().nullable(),
  reason: z.string(),
  quarantined_by: z.string(),
  cleared_by: z.string().nullable(),
});

export const ReplicaView = looseView({
  id: z.string(),
  hostname: z.string(),
  region: z.string(),
  url: z.string(),
  version: z.string(),
  ready: z.boolean(),
  leader: z.boolean(),
  live: z.boolean(),
  /** Whether the load balancer (drydock edge) sends traffic to it: false only for the side a blue-green rollout does not serve. */
  serving: z.boolean(),
  seen_ago_ms: z.number(),
});
