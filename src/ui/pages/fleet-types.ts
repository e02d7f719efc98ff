/** A node as GET /api/v1/nodes returns it (the same list `drydock nodes` prints). */
export interface NodeView {
  id: string;
  hostname: string;
  region: string;
  role: string;
  status: string;
  draining: boolean;
  cordoned: boolean;
  max_instances: number;
  active_instances: number;
  available_capacity: number;
  components: Record<string, string>;
  agent_version: string | null;
  last_heartbeat_at: string | null;
  drain: { state: string; message: string; blocked_by: string[]; deadline: string } | null;
  installs: { component: string; version: string; phase: string; reason: string | null; received_at: string }[];
  /** The A/B boot slots of its os-image, as its agent last reported them (null: none). */
  slots?: { a: { version: string | null }; b: { version: string | null }; active: 'a' | 'b'; next: 'a' | 'b'; tries_left: number } | null;
  labels: Record<string, string>;
}

/** GET /api/v1/fleet/summary: counts without rows, and the filters' choices. */
export interface FleetSummary {
  nodes: number;
  ready: number;
  down: number;
  cordoned: number;
  draining: number;
  instances: number;
  regions: { region: string; nodes: number }[];
  roles: string[];
  versions: string[];
}

export function versionsOf(node: NodeView): string[] {
  return Object.entries(node.components).map(([c, v]) => `${c}@${v}`);
}
