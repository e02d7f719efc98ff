// The fleet's vocabulary (DESIGN.md §4) as plain data. Nothing here knows about HTTP or SQL.

export const NODE_ROLES = ['worker', 'control-plane'] as const;
export type NodeRole = (typeof NODE_ROLES)[number];

export const NODE_STATUSES = ['ready', 'cordoned', 'draining', 'upgrading', 'verifying', 'down'] as const;
export type NodeStatus = (typeof NODE_STATUSES)[number];

export const INSTANCE_STATUSES = ['pending', 'starting', 'running', 'stopping', 'stopped', 'failed', 'unknown'] as const;
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];

export const DRAIN_STATES = ['running', 'blocked', 'completed', 'failed'] as const;
export type DrainState = (typeof DRAIN_STATES)[number];

export interface FleetNode {
  id: string;
  hostname: string;
  region: string;
  role: NodeRole;
  labels: Record<string, string>;
  status: NodeStatus;
  cordoned: boolean;
  maxInstances: number;
  lastHeartbeatAt: Date | null;
}

export interface NodeSelector {
  hostname?: string;
  region?: string;
  role?: NodeRole;
  labels?: Record<string, string>;
}

/** A child process in its own process group (the default driver). */
export interface ProcessWorkload {
  driver?: 'process';
  command: string;
  args?: string[];
  env?: Record<string, string>;
  health_path?: string;
}

/** A virtual machine under QEMU, booted from a signed `vm-image` artifact (DESIGN.md §10). */
export interface VmWorkload {
  driver: 'vm';
  /** `<component>@<version>` or an artifact id, as the user wrote it. */
  image: string;
  /** The `vm-image` artifact `image` resolved to when the deployment was written. */
  image_artifact_id: string;
  memory_mb: number;
  vcpus: number;
  /** The port the guest serves on; the host forwards a loopback port to it. */
  guest_port: number;
  health_path?: string;
}

export type Workload = ProcessWorkload | VmWorkload;

export interface Deployment {
  id: string;
  name: string;
  replicas: number;
  minAvailable: number;
  workload: Workload;
  nodeSelector: NodeSelector | null;
  /** Deleted by a person: its instances are stopped and removed, then it is (absent: false). */
  deleting?: boolean;
}

export interface Instance {
  id: string;
  deploymentId: string;
  nodeId: string;
  /** What the operator wants: the agent converges to it. */
  desired: 'running' | 'stopped';
  /** What the agent last reported. */
  status: InstanceStatus;
  healthy: boolean;
  /** Published instances are the deployment's endpoints (what routers send traffic to). */
  published: boolean;
  /** Set on the new incarnation of a migration until it takes over from the old one. */
  replaces: string | null;
  /** A pinned instance force-stopped by a drain comes back on its node after `enable`. */
  restartOnEnable: boolean;
  createdAt: Date;
}

/** How a drain empties its node: move the instances elsewhere, or stop them there to restart in place. */
export type DrainMode = 'migrate' | 'restart';

export interface Drain {
  nodeId: string;
  state: DrainState;
  force: boolean;
  /**
   * `restart`: every instance is withdrawn and stopped on the node, kept for it (restartOnEnable),
   * and started there again after the install (a rollout's `drain.mode: restart`). Absent: migrate.
   */
  mode?: DrainMode;
  startedAt: Date;
  deadline: Date;
  message: string;
  /** Instance ids that keep the drain from completing (pinned, or nowhere to go). */
  blockedBy: string[];
}
