// The agent protocol (DESIGN.md §7): agents pull. A heartbeat carries the node's actual state;
// every reply carries the whole desired state, so a missed message costs nothing.
import type { InstanceStatus, NodeRole, Workload } from './types.js';

/** Bumped when the wire format changes incompatibly; the operator accepts its own and the previous. */
export const PROTOCOL_VERSION = 1;

export interface RegisterRequest {
  hostname: string;
  region: string;
  role: NodeRole;
  max_instances: number;
  labels?: Record<string, string>;
  /** The id this agent was given before (kept in its data dir), so a wiped database keeps ids. */
  node_id?: string;
  agent_version: string;
  agent_url?: string;
  protocol_version: number;
}

export interface RegisterResponse {
  node_id: string;
  heartbeat_interval_ms: number;
  /** Sent back on every heartbeat and long-poll (header below); only this node's is accepted. */
  node_credential: string;
}

/** The header an agent proves its node with (checked when the operator runs with tokens). */
export const NODE_CREDENTIAL_HEADER = 'x-drydock-node-credential';

export interface ActualInstance {
  id: string;
  status: InstanceStatus;
  healthy: boolean;
  pid: number | null;
  port: number | null;
  /** Free-form reason for the last failure, shown to people. */
  message?: string;
}

export const ARTIFACT_KINDS = ['agent', 'binary', 'script'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

export const INSTALL_PHASES = ['downloading', 'verifying', 'installing', 'assessing', 'done', 'failed', 'reverted'] as const;
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
  /** True only when the operator asks for an explicit rollback: the only way a downgrade is installed. */
  rollback: boolean;
  disruptive: boolean;
  /**
   * Changes whenever someone sets this component's version on the node again (even to the same
   * version): a request that failed is retried only when a new request arrives.
   */
  request_id?: string;
}

/** Progress of one component install, persisted by the agent and reported in every heartbeat. */
export interface InstallReport {
  component: string;
  version: string;
  previous_version: string | null;
  phase: InstallPhase;
  /** Why it failed or was reverted, for people. */
  reason?: string;
  /**
   * On a failed install: true when the agent retries it by itself (a download error), false when
   * only a new request starts it again. Absent from agents older than the flag.
   */
  retryable?: boolean;
  updated_at: string;
}

export interface HeartbeatRequest {
  node_id: string;
  agent_version: string;
  protocol_version: number;
  components: Record<string, string>;
  instances: ActualInstance[];
  /** Installs in progress or finished since the last desired change (optional for old agents). */
  installs?: InstallReport[];
  /** The desired generation the agent has converged to (or is converging to). */
  generation: number;
}

export interface DesiredInstance {
  id: string;
  deployment_id: string;
  deployment: string;
  desired: 'running' | 'stopped';
  workload: Workload;
}

export interface DesiredState {
  node_id: string;
  generation: number;
  draining: boolean;
  instances: DesiredInstance[];
  components: Record<string, DesiredComponent>;
}
