// Builders shared by the domain tests: a node, a deployment and an instance with defaults for a
// healthy, idle fleet at NOW. A test that needs another clock, capacity or budget wraps these and
// passes its own defaults before the caller's overrides (see rollout/fixtures.ts).
import type { Deployment, FleetNode, Instance } from '../../src/domain/types.js';

export const NOW = new Date('2024-05-01T12:00:00.000Z');
export const REGIONS = ['us-east', 'eu-west', 'ap-south'] as const;

export const ago = (ms: number): Date => new Date(NOW.getTime() - ms);

/** A ready, uncordoned worker in us-east with room for 4 instances, heartbeating at NOW. */
export function node(id: string, over: Partial<FleetNode> = {}): FleetNode {
  return {
    id,
    hostname: `host-${id}`,
    region: 'us-east',
    role: 'worker',
    labels: {},
    status: 'ready',
    cordoned: false,
    maxInstances: 4,
    lastHeartbeatAt: NOW,
    ...over,
  };
}

/** One replica, no disruption budget, no selector. */
export function deployment(id: string, over: Partial<Deployment> = {}): Deployment {
  return { id, name: id, replicas: 1, minAvailable: 0, workload: { command: 'app' }, nodeSelector: null, ...over };
}

/** A running, healthy, published original (not a replacement), created at NOW. */
export function instance(id: string, deploymentId: string, nodeId: string, over: Partial<Instance> = {}): Instance {
  return {
    id,
    deploymentId,
    nodeId,
    desired: 'running',
    status: 'running',
    healthy: true,
    published: true,
    replaces: null,
    restartOnEnable: false,
    createdAt: NOW,
    ...over,
  };
}
