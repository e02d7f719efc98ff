// Request and response shapes of the HTTP API. They validate input and generate /openapi.json.
import { z } from 'zod';
import { ARTIFACT_LIFECYCLES } from '../domain/artifact-lifecycle.js';
import { parseDuration } from '../domain/duration.js';
import {
  ActualInstanceSchema,
  ARTIFACT_KINDS,
  BIGINT_SAFE_MAX,
  BootSlotsReportSchema,
  DesiredQuerySchema,
  HeartbeatRequestSchema,
  INSTALL_PHASES,
  InstallReportSchema,
  INT4_MAX,
  LabelsSchema,
  OPERATORS_ROUTE,
  RegisterRequestSchema,
} from '../domain/protocol.js';
import { isSemver } from '../domain/semver.js';
import { ActivitySchema } from '../domain/workload-report.js';
import { NODE_ROLES, NODE_STATUSES } from '../domain/types.js';

// The bounds live with the agent protocol, which is defined in the domain (one definition).
export { INT4_MAX };
/** Longest duration any request may ask for (a drain timeout): 7 days; a longer one is a typo. */
export const MAX_REQUEST_DURATION_MS = 7 * 86_400_000;
/** Hostnames are at most 253 characters; ids and names fit in that too. */
const Ref = z.string().min(1).max(253);

export const IdParam = z.object({ id: z.string().min(1).max(200).describe('id (or hostname/name where the route says so)') });

export const NodeSelectorSchema = z
  .object({
    hostname: z.string().min(1).max(253).optional(),
    region: z.string().min(1).max(63).optional(),
    role: z.enum(NODE_ROLES).optional(),
    labels: LabelsSchema.optional(),
  })
  .strict();

export const ProcessWorkloadSchema = z
  .object({
    driver: z.literal('process').optional().describe('default'),
    command: z.string().min(1).max(4096).describe('executable to run (resolved on the agent PATH)'),
    args: z.array(z.string().max(4096)).max(100).optional(),
    env: z.record(z.string().max(256).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'env names are letters, digits and _'), z.string().max(32_768)).optional(),
    health_path: z.string().startsWith('/').max(500).optional().describe('probed at http://127.0.0.1:$PORT{health_path}; default /'),
  })
  .strict();

/** A VM under QEMU (DESIGN.md §10); `image_artifact_id` is filled in by the operator, never accepted. */
export const VmWorkloadSchema = z
  .object({
    driver: z.literal('vm'),
    image: z.string().min(1).max(300).describe('a vm-image artifact: <component>@<version> or its id'),
    memory_mb: z.number().int().min(64).max(65_536).default(128).describe('guest memory; default 128'),
    vcpus: z.number().int().min(1).max(64).default(1).describe('default 1'),
    guest_port: z.number().int().min(1).max(65_535).default(8080).describe('the port the guest serves on; default 8080'),
    health_path: z.string().startsWith('/').max(500).optional().describe("probed through the host's forwarded port; default the image's"),
  })
  .strict();

export const WorkloadSchema = z.union([ProcessWorkloadSchema, VmWorkloadSchema]);

export const DeploymentSpec = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'lowercase letters, digits and -, at most 63')
      .refine((name) => name !== OPERATORS_ROUTE, `${OPERATORS_ROUTE} is the edge's route to the operators; pick another name`),
    replicas: z.number().int().min(0).max(10_000),
    min_available: z.number().int().min(0).max(10_000).default(0),
    workload: WorkloadSchema,
    node_selector: NodeSelectorSchema.nullable().optional(),
  })
  .strict()
  .refine((d) => d.min_available <= d.replicas, { message: 'min_available cannot exceed replicas', path: ['min_available'] });

const Duration = z
  .union([z.string(), z.number()])
  .refine((v) => parseDuration(v) !== null, 'a duration like "30s", "10m" or a number of seconds')
  .transform((v) => parseDuration(v) as number)
  .refine((ms) => ms <= MAX_REQUEST_DURATION_MS, 'at most 7d');

export const DrainBody = z
  .object({
    force: z.boolean().optional().describe('stop pinned instances until the node is enabled'),
    timeout: Duration.optional().describe('bound on the whole drain; default 10m'),
  })
  .strict()
  .nullable()
  .optional();

export const VolumeReportBody = z
  .object({
    replicas: z.number().int().min(1).max(1000).describe('replicas the volume has'),
    healthy_replicas: z.number().int().min(0).max(1000).describe('of them, healthy now'),
    expires_in: Duration.optional().describe('the report stops counting after this; default 10m'),
  })
  .strict()
  .refine((v) => v.healthy_replicas <= v.replicas, { message: 'healthy_replicas cannot exceed replicas', path: ['healthy_replicas'] });

export const ActivityReportBody = z
  .object({
    activity: ActivitySchema.describe('what runs on the instance data now'),
    expires_in: Duration.optional().describe('the report stops counting after this; default 1h'),
  })
  .strict();

export const MigrateBody = z
  .object({
    target_node: Ref.optional().describe('node id or hostname; default: best node with room'),
    force: z.boolean().optional().describe('move a pinned instance anyway'),
    mode: z
      .enum(['live', 'restart'])
      .optional()
      .describe('live: carry the running VM over (vm workloads only); restart: start anew on the target, then stop the old (default: live for vm, restart otherwise)'),
    downtime_limit_ms: z.number().int().min(1).max(60_000).optional().describe('longest pause a live move may cause; default 300'),
    deadline: Duration.optional().describe('a live move not completed by then fails and the VM stays where it is; default 10m'),
  })
  .strict()
  .nullable()
  .optional();

/** Filters of the node list and the fleet summary. */
export const NodeFilterQuery = z.object({
  region: z.string().max(63).optional(),
  status: z.enum(NODE_STATUSES).optional(),
  role: z.string().max(63).optional(),
  version: z
    .string()
    .max(200)
    .regex(/^[^@]+@.+$/, 'component@version, e.g. node-agent@1.0.0')
    .optional()
    .describe('component@version: nodes reporting that component at that version'),
});

/** Largest page of GET /api/v1/nodes?limit=. */
export const NODE_PAGE_MAX = 1000;

export const NodeListQuery = NodeFilterQuery.extend({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(NODE_PAGE_MAX)
    .optional()
    .describe(`a page of at most this many nodes (1-${NODE_PAGE_MAX}), in the list's order (region, hostname); default every node`),
  offset: z.coerce.number().int().min(0).max(1_000_000).optional().describe('skip this many nodes first (with limit: the page after); default 0'),
});

export const FleetSummaryView = z.object({
  nodes: z.number().int(),
  ready: z.number().int(),
  down: z.number().int(),
  cordoned: z.number().int(),
  draining: z.number().int(),
  instances: z.number().int().describe('active instances on these nodes'),
  regions: z.array(z.object({ region: z.string(), nodes: z.number().int() })),
  roles: z.array(z.string()).describe('every role in the fleet (not narrowed by the filter)'),
  versions: z.array(z.string()).describe('every component@version in the fleet (not narrowed by the filter)'),
});

export const InstanceListQuery = z.object({
  node: Ref.optional().describe('node id or hostname'),
  deployment: Ref.optional().describe('deployment id or name'),
});

export const EventsQuery = z.object({
  after: z.coerce.number().int().min(0).max(BIGINT_SAFE_MAX).optional(),
  kind_prefix: z.string().max(100).optional(),
  node_id: Ref.optional(),
  rollout_id: Ref.optional(),
  limit: z.coerce.number().int().min(1).max(5000).optional(),
  order: z.enum(['asc', 'desc']).optional().describe('desc: newest first (e.g. ?order=desc&limit=1 to find the end of the log)'),
});

const InstallView = z.looseObject({
  component: z.string(),
  version: z.string(),
  previous_version: z.string().nullable(),
  phase: z.enum(INSTALL_PHASES),
  reason: z.string().nullable(),
  updated_at: z.string(),
});

export const NodeView = z.looseObject({
  id: z.string(),
  hostname: z.string(),
  region: z.string(),
  role: z.string(),
  status: z.enum(NODE_STATUSES),
  draining: z.boolean(),
  active_instances: z.number().int(),
  max_instances: z.number().int(),
  available_capacity: z.number().int(),
  components: z.record(z.string(), z.string()),
  agent_version: z.string().nullable(),
  installs: z.array(InstallView),
  slots: BootSlotsReportSchema.nullable().optional().describe('the A/B boot slots of its os-image (null: none)'),
});

export const InstanceView = z.looseObject({
  id: z.string(),
  deployment_id: z.string(),
  node_id: z.string(),
  status: z.string(),
  healthy: z.boolean(),
  url: z.string().nullable(),
});

export const DeploymentView = z.looseObject({
  id: z.string(),
  name: z.string(),
  replicas: z.number().int(),
  min_available: z.number().int(),
});

export const Endpoint = z.object({
  instance_id: z.string(),
  node_id: z.string(),
  url: z.string(),
  healthy: z.boolean(),
});

export const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }),
});

// Agent gateway: the agent protocol's own schemas (src/domain/protocol.ts), under the names the routes use.
export const RegisterBody = RegisterRequestSchema;
export { ActualInstanceSchema, InstallReportSchema };
export const HeartbeatBody = HeartbeatRequestSchema;
export const DesiredQuery = DesiredQuerySchema;

// Artifacts.
export const ComponentName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'lowercase letters, digits and -, at most 63');
export const Version = z.string().max(100).refine(isSemver, 'a semantic version like 1.2.3 or 2.0.0-rc.1');
const Base64Signature = z
  .string()
  .regex(/^[A-Za-z0-9+/]{86}==$/, 'a base64 ed25519 signature (64 bytes), as `drydock artifacts publish` makes it');
const QueryBool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

export const ArtifactUploadQuery = z
  .object({
    component: ComponentName,
    version: Version,
    kind: z.enum(ARTIFACT_KINDS),
    disruptive: QueryBool.optional().describe('installing it stops instances, so nodes are drained first; default false'),
    reboot: QueryBool.optional().describe('installing it reboots the node into an A/B slot (DESIGN.md §12): true for kind os-image (the default), refused for any other kind'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'lowercase hex sha256').optional().describe('refuse the upload unless the bytes hash to this'),
    signature: Base64Signature.optional().describe('ed25519 signature of the artifact; needs public_key'),
    public_key: z.string().max(1000).optional().describe('PEM of the key that signed it; the signature is checked against it'),
    ref: z
      .string()
      .max(1000)
      .optional()
      .describe('an os-image published by reference, `oci://HOST[:PORT]/REPO:TAG` or `…/REPO@sha256:…`, with no body: sha256 is the digest of the image blob the agent fetches from that registry and checks'),
  })
  .strict()
  .refine((q) => (q.signature === undefined) === (q.public_key === undefined), {
    message: 'send signature and public_key together (or neither, for an unsigned draft)',
    path: ['signature'],
  })
  .refine((q) => q.ref === undefined || q.sha256 !== undefined, {
    message: 'a ref needs the sha256 of the image blob it names: that digest is what is signed and what the agent checks',
    path: ['sha256'],
  });

export const ArtifactListQuery = z.object({ component: ComponentName.optional() });

export const ArtifactView = z.looseObject({
  id: z.string(),
  component: z.string(),
  version: z.string(),
  kind: z.enum(ARTIFACT_KINDS),
  sha256: z.string(),
  size: z.number().int(),
  signature: z.string().nullable(),
  key_id: z.string().nullable(),
  disruptive: z.boolean(),
  reboot: z.boolean(),
  ref: z.string().nullable().describe('an os-image published by reference (oci://…): its bytes stay in that registry (size 0); null: uploaded'),
  lifecycle: z.enum(ARTIFACT_LIFECYCLES),
});

export const NodeComponentParams = z.object({ id: z.string().min(1).max(200), component: ComponentName });

export const SetVersionBody = z
  .object({
    version: Version,
    force: z.boolean().optional().describe('install a disruptive component although the node still hosts instances'),
    rollback: z.boolean().optional().describe('an explicit rollback: the only way the agent installs a lower version'),
    prestage: z.boolean().optional().describe('only download, verify and stage it into the inactive slot (reported as `staged`); the install follows when set again without it'),
  })
  .strict();
