// Builders for the rollout domain tests: a fleet, a parsed spec, a rollout with its tasks built
// from a plan (the way the operator builds them, shared with the simulator in src/sim), and node facts. Nodes, deployments and instances
// come from ../fixtures.ts, here on the rollout clock T0 and with room for 10 instances a node.
import type { BatchPlan } from '../../../src/domain/rollout/batches.js';
import type { NodeFacts, Rollout, RolloutTask } from '../../../src/domain/rollout/model.js';
import { parseRolloutSpec, type RolloutSpec, type RolloutSpecInput } from '../../../src/domain/rollout/spec.js';
import type { FleetNode, Instance } from '../../../src/domain/types.js';
import { newRollout, newTask, tasksFromPlan as simTasksFromPlan } from '../../../src/sim/rollout-records.js';
import { instance as sharedInstance, node, REGIONS } from '../fixtures.js';

export const T0 = new Date('2024-05-07T03:00:00.000Z');

export const at = (ms: number): Date => new Date(T0.getTime() + ms);

export function fleetNode(id: string, over: Partial<FleetNode> = {}): FleetNode {
  return node(id, { maxInstances: 10, lastHeartbeatAt: T0, ...over });
}

/** `perRegion` nodes in each region, ids r<region index>-n<k>, hostnames sorted in the same order. */
export function fleet(perRegion: number, over: Partial<FleetNode> = {}, regions: readonly string[] = REGIONS): FleetNode[] {
  return regions.flatMap((region, r) =>
    Array.from({ length: perRegion }, (_, k) => fleetNode(`r${r}-n${String(k).padStart(2, '0')}`, { region, ...over })),
  );
}

export function instance(id: string, deploymentId: string, nodeId: string, over: Partial<Instance> = {}): Instance {
  return sharedInstance(id, deploymentId, nodeId, { createdAt: T0, ...over });
}

type StrategyInput = NonNullable<RolloutSpecInput['strategy']>;

/** A valid spec for `node-agent 2.0.0` with the given strategy (defaults filled by the real parser). */
export function spec(strategy: StrategyInput = {}, over: Partial<RolloutSpecInput> = {}): RolloutSpec {
  const parsed = parseRolloutSpec({ name: 'agent-2', target: { component: 'node-agent', version: '2.0.0' }, strategy, ...over });
  if (!parsed.ok) throw new Error(`fixture spec is invalid: ${JSON.stringify(parsed.issues)}`);
  return parsed.spec;
}

export function rollout(s: RolloutSpec, over: Partial<Rollout> = {}): Rollout {
  return newRollout(s, over);
}

export function task(nodeId: string, over: Partial<RolloutTask> = {}): RolloutTask {
  return newTask('ro-1', nodeId, T0, over);
}

/** Tasks as the operator creates them from a plan: pending per batch, skipped for nodes already on the target. */
export function tasksFromPlan(plan: BatchPlan, fromVersion: (nodeId: string) => string | null = () => '1.0.0', since = T0): RolloutTask[] {
  return simTasksFromPlan(plan, 'ro-1', fromVersion, since);
}

export function facts(id: string, over: Partial<NodeFacts> = {}): NodeFacts {
  return {
    id,
    status: 'ready',
    cordoned: false,
    drainState: null,
    drainMessage: '',
    version: '1.0.0',
    install: undefined,
    instancesHealthy: true,
    ...over,
  };
}

export function factsMap(list: readonly NodeFacts[]): Map<string, NodeFacts> {
  return new Map(list.map((f) => [f.id, f]));
}
