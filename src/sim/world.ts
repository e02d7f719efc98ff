// The simulated world a rollout runs over: nodes round-robin over regions with room to spare,
// deployments of a few replicas, and their instances packed onto the nodes in order.
import type { Deployment, FleetNode, Instance } from '../domain/types.js';

export interface WorldOptions {
  nodes: number;
  regions: number;
  instancesPerNode: number;
  /** Share of each node's room left free (0.2: 20 instances on a node with room for 25). */
  spare: number;
  replicas: number;
  /** When every node last heartbeated and every instance was created. */
  at: Date;
}

export interface World {
  nodes: FleetNode[];
  instances: Instance[];
  deployments: Deployment[];
}

/** `nodes` ready workers node-00000… over region-0…, `instancesPerNode` healthy instances each; deployment d's replicas sit on nodes far apart (instance i belongs to deployment i mod count). */
export function buildWorld(options: WorldOptions): World {
  const { at, instancesPerNode } = options;
  const regions = Array.from({ length: options.regions }, (_, r) => `region-${r}`);
  const maxInstances = Math.ceil(instancesPerNode / (1 - options.spare));
  const nodes: FleetNode[] = Array.from({ length: options.nodes }, (_, n) => ({
    id: `node-${String(n).padStart(5, '0')}`,
    hostname: `host-${String(n).padStart(5, '0')}`,
    region: regions[n % regions.length] as string,
    role: 'worker',
    labels: {},
    status: 'ready',
    cordoned: false,
    maxInstances,
    lastHeartbeatAt: at,
  }));
  const replicas = Math.max(1, options.replicas);
  const total = options.nodes * instancesPerNode;
  const deploymentCount = Math.max(1, Math.ceil(total / replicas));
  const deployments: Deployment[] = Array.from({ length: deploymentCount }, (_, d) => ({
    id: `dep-${d}`,
    name: `app-${d}`,
    replicas,
    minAvailable: Math.max(0, replicas - 1),
    workload: { command: 'app' },
    nodeSelector: null,
  }));
  const instances: Instance[] = [];
  for (let i = 0; i < total; i++) {
    instances.push({
      id: `inst-${i}`,
      deploymentId: `dep-${i % deploymentCount}`,
      nodeId: (nodes[Math.floor(i / instancesPerNode)] as FleetNode).id,
      desired: 'running',
      status: 'running',
      healthy: true,
      published: true,
      replaces: null,
      restartOnEnable: false,
      createdAt: at,
    });
  }
  return { nodes, instances, deployments };
}

/** Instances per node id. */
export function instancesPerNode(instances: readonly Instance[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const i of instances) counts.set(i.nodeId, (counts.get(i.nodeId) ?? 0) + 1);
  return counts;
}
