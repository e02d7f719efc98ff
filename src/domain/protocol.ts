// The agent protocol (DESIGN.md §7): agents pull. A heartbeat carries the node's actual state;
// every reply carries the whole desired state, so a missed message costs nothing.
// What agents send is defined once, as zod schemas (the operator validates with them, and they
// generate /openapi.json); the TypeScript types are inferred from them. zod is pure computation.
import { z } from 'zod';
import type { DesiredMigration } from './instance-migration.js';
import { INSTANCE_STATUSES, NODE_ROLES, type Workload } from './types.js';
import { ActivitySchema, VolumeSchema } from './workload-report.js';

/** Bumped when the wire format changes incompatibly; the operator accepts its own and the previous. */
export const PROTOCOL_VERSION = 1;

/**
 * Numbers that land in Postgres `integer` columns stop at its maximum: a larger one would be
 * refused by the database (a 500, or a failed heartbeat batch) instead of by the schema.
 */
export const INT4_MAX = 2_147_483_647;
/** Generations and event ids are `bigint`; JSON numbers are exact up to 2^53 - 1. */
export const BIGINT_SAFE_MAX = Number.MAX_SAFE_INTEGER;

export const LabelsSchema = z.record(z.string().max(63), z.string().max(253));

export const RegisterRequestSchema = z
  .object({
    hostname: z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'a hostname'),
    region: z.string().regex(/^[a-z0-9-]{1,63}$/, 'lowercase letters, digits and -'),
    role: z.enum(NODE_ROLES).default('worker'),
    max_instances: z.number().int().min(0).max(100_000),
    labels: LabelsSchema.optional(),
    /** The id this agent was given before (kept in its data dir), so a wiped database keeps ids. */
    node_id: z.string().min(1).max(200).optional(),
    agent_version: z.string().min(1).max(100),
    agent_url: z.string().url().max(2048).optional(),
    protocol_version: z.number().int().min(1).max(INT4_MAX),
  })
  .strict();
export type RegisterRequest = z.infer<typeof RegisterRequestSchema>;

export interface RegisterResponse {
  node_id: string;
  heartbeat_interval_ms: number;
  /** Sent back on every heartbeat and long-poll (header below); only this node's is accepted. */
  node_credential: string;
}

/**
 * The edge's route to the operator replicas themselves (`/d/drydock/…`, `drydock.localhost`), so
 * API clients and agents can use one address while replicas restart (DESIGN.md §11). No
 * deployment may take the name.
 */
export const OPERATORS_ROUTE = 'drydock';

/** The header an agent proves its node with (checked when the operator runs with tokens). */
export const NODE_CREDENTIAL_HEADER = 'x-drydock-node-credential';

export const ActualInstanceSchema = z.object({
  id: z.string().min(1).max(200),
  status: z.enum(INSTANCE_STATUSES),
  healthy: z.boolean(),
  // pid and port are `integer` columns; Linux pids stop far below INT4_MAX, ports at 65535.
  pid: z.number().int().min(0).max(INT4_MAX).nullable(),
  port: z.number().int().min(0).max(65_535).nullable(),
  /** Free-form reason for the last failure, shown to people. */
  message: z.string().max(2000).optional(),
  /** This side of a live migration (DESIGN.md §10); absent when none is under way. */
  migration: z
    .object({
      migration_id: z.string().min(1).max(200),
      role: z.enum(['source', 'target']),
      state: z.enum(['ready', 'transferring', 'completed', 'failed']),
      address: z.string().max(500).optional(),
      total_ms: z.number().min(0).max(1e9).optional(),
      downtime_ms: z.number().min(0).max(1e9).optional(),
      transferred_bytes: z.number().int().min(0).max(BIGINT_SAFE_MAX).optional(),
      reason: z.string().max(2000).optional(),
    })
    .strict()
    .optional(),
  /**
   * What the workload reports of its data (domain/workload-report.ts), shaped as the PUT
   * …/volume and …/activity routes take it. Absent: it reports none, and a value the agent
   * reported before is cleared (one set through those routes stays until it expires).
   */
  volume: VolumeSchema.optional(),
  activity: ActivitySchema.optional(),
});
export type ActualInstance = z.infer<typeof ActualInstanceSchema>;

export const ARTIFACT_KINDS = ['agent', 'binary', 'script', 'vm-image', 'operator', 'os-image'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

/**
 * `staged`: a pre-staged reboot-class component (DESIGN.md §12) is downloaded, verified and in
 * the node's inactive slot, nothing switched; the real install (after the drain) follows.
 */
export const INSTALL_PHASES = ['downloading', 'verifying', 'installing', 'staged', 'assessing', 'done', 'failed', 'reverted'] as const;
export type InstallPhase = (typeof INSTALL_PHASES)[number];

/** One component the node should run, with what the agent needs to fetch and verify it. */
export interface DesiredComponent {
  version: string;
  artifact_id: string;
  kind: ArtifactKind;
  sha256: string;
  size: number;
  /** base64 ed25519 signature of `artifactSigningMessage(...)`; null only for unsigned drafts. */
  signature: string | null;
  /** Path on the operator to download the bytes from (streamed). */
  url: string;
  /**
   * An os-image published by reference (`oci://HOST[:PORT]/REPO:TAG`): the agent fetches the
   * image from that registry instead of `url`, and checks it against `sha256` all the same.
   * Absent: the bytes are on the operator.
   */
  ref?: string;
  /** True only when the operator asks for an explicit rollback: the only way a downgrade is installed. */
  rollback: boolean;
  disruptive: boolean;
  /**
   * The version this one replaced, which a rollback of the rollout would return to: the agent
   * never prunes its directory (absent from older operators; null: none).
   */
  previous_version?: string | null;
  /**
   * Changes whenever someone sets this component's version on the node again (even to the same
   * version): a request that failed is retried only when a new request arrives.
   */
  request_id?: string;
  /**
   * Blue-green (operator): the new version starts beside the one running, which keeps running
   * until this turns false (retired). Absent from older operators: false.
   */
  keep_previous?: boolean;
  /**
   * Pre-staging (DESIGN.md §12): download, verify and stage the version into the inactive slot
   * only, and report `staged`; the install itself follows once this turns false (after the
   * drain). Absent from older operators: false.
   */
  prestage?: boolean;
}

/** Progress of one component install, persisted by the agent and reported in every heartbeat. */
export const InstallReportSchema = z.object({
  component: z.string().min(1).max(100),
  version: z.string().min(1).max(100),
  previous_version: z.string().max(100).nullable(),
  phase: z.enum(INSTALL_PHASES),
  /** Why it failed or was reverted, for people. */
  reason: z.string().max(4000).optional(),
  /**
   * On a failed install: true when the agent retries it by itself (a download error), false when
   * only a new request starts it again. Absent from agents older than the flag.
   */
  retryable: z.boolean().optional(),
  /** On a done install: old version directories the agent removed after it (absent: none yet). */
  pruned: z.array(z.string().min(1).max(100)).max(1000).optional(),
  /** With `pruned`: the version directories that stay. */
  kept: z.array(z.string().min(1).max(100)).max(1000).optional(),
  updated_at: z.string().max(100),
});
export type InstallReport = z.infer<typeof InstallReportSchema>;

/**
 * A node hook (preNode, postNode) the node's agent should run (DESIGN.md §12): listed in the
 * desired state from the moment the operator asks for it until its outcome is recorded. `id` and
 * `attempt` name the run; the agent journals it under them, so a restart never runs a finished
 * one again.
 */
export interface DesiredHook {
  id: string;
  attempt: number;
  point: 'preNode' | 'postNode';
  /** The command and its arguments; or `webhook`: a URL to POST the run's fields to. */
  run?: string[];
  webhook?: string;
  timeout_ms: number;
  /** DRYDOCK_* plus the hook's own env. */
  env: Record<string, string>;
}

/** Most output of a hook kept and reported: its last 4 KiB. */
export const HOOK_OUTPUT_TAIL_BYTES = 4096;

/** What the agent says about a hook run it was asked for: running, or how it ended. */
export const HookReportSchema = z
  .object({
    id: z.string().min(1).max(600),
    attempt: z.number().int().min(1).max(INT4_MAX),
    status: z.enum(['running', 'succeeded', 'failed']),
    exit_code: z.number().int().min(-INT4_MAX).max(INT4_MAX).nullable().optional(),
    /** The last HOOK_OUTPUT_TAIL_BYTES of its output (characters, so a little more than the bytes at most). */
    output_tail: z.string().max(2 * HOOK_OUTPUT_TAIL_BYTES).optional(),
    reason: z.string().max(4000).optional(),
    started_at: z.string().max(100).optional(),
    finished_at: z.string().max(100).optional(),
  })
  .strict();
export type HookReport = z.infer<typeof HookReportSchema>;

const SlotVersionSchema = z.object({ version: z.string().min(1).max(100).nullable() }).strict();

/** A/B boot slots as heartbeats report them (domain/boot-slots.ts `slotsReport`). */
export const BootSlotsReportSchema = z
  .object({
    a: SlotVersionSchema,
    b: SlotVersionSchema,
    /** The slot the node booted from. */
    active: z.enum(['a', 'b']),
    /** The slot the next boot uses. */
    next: z.enum(['a', 'b']),
    /** Boots left for an unblessed next slot before the node falls back (0 when none is pending). */
    tries_left: z.number().int().min(0).max(1000),
  })
  .strict();
export type BootSlotsReport = z.infer<typeof BootSlotsReportSchema>;

export const HeartbeatRequestSchema = z.object({
  node_id: z.string().min(1).max(200),
  agent_version: z.string().min(1).max(100),
  protocol_version: z.number().int().min(1).max(INT4_MAX),
  components: z.record(z.string().min(1).max(100), z.string().max(100)).default({}),
  instances: z.array(ActualInstanceSchema).max(100_000),
  /** Installs in progress or finished since the last desired change (optional for old agents). */
  installs: z.array(InstallReportSchema).max(1000).optional(),
  /** The hook runs of its desired state, as far as they got (optional for agents without hooks). */
  hooks: z.array(HookReportSchema).max(100).optional(),
  /** The desired generation the agent has converged to (or is converging to). */
  generation: z.number().int().min(0).max(BIGINT_SAFE_MAX),
  /** The node's A/B boot slots of reboot-class components (optional: only a node that has them). */
  slots: BootSlotsReportSchema.optional(),
});
export type HeartbeatRequest = z.infer<typeof HeartbeatRequestSchema>;

/** The long-poll for the desired state: it answers once the generation is above `after`. */
export const DesiredQuerySchema = z.object({
  node_id: z.string().min(1).max(200),
  after: z.coerce.number().int().min(0).max(BIGINT_SAFE_MAX).default(0).describe('return once the generation is above this'),
  wait: z.coerce.number().int().min(0).max(60).default(25).describe('seconds to hold the request open'),
});

export interface DesiredInstance {
  id: string;
  deployment_id: string;
  deployment: string;
  desired: 'running' | 'stopped';
  workload: Workload;
  /** A `vm` workload's image: the signed artifact the agent downloads and verifies. */
  image?: DesiredVmImage;
  /** This instance's side of an open live migration (DESIGN.md §10). */
  migration?: DesiredMigration;
}

export interface DesiredVmImage {
  artifact_id: string;
  /** Component and version: what the signature covers, with kind `vm-image` and the sha256. */
  component: string;
  version: string;
  sha256: string;
  size: number;
  signature: string | null;
  /** Path on the operator to download the bytes from. */
  url: string;
}

export interface DesiredState {
  node_id: string;
  generation: number;
  draining: boolean;
  instances: DesiredInstance[];
  components: Record<string, DesiredComponent>;
  /** Node hooks to run, in the order given (absent from operators without hooks). */
  hooks?: DesiredHook[];
}
