// One simulated upgrade of a world: each node's fate (install lands, fails, or lands broken) and
// install time drawn from a seeded generator, the fleet model built from the world, and the
// rollout driven to its end. The bench and the 10,000-node property test both run this.
import type { BatchPlan } from '../domain/rollout/batches.js';
import type { RolloutSpec } from '../domain/rollout/spec.js';
import { type DriveResult, driveRollout } from './drive.js';
import { FleetModel, type InstallOutcome } from './fleet-model.js';
import type { HumanChoice } from './human.js';
import { lowerBoundMs, type NodeTimes } from './lower-bound.js';
import { newRollout, tasksFromPlan } from './rollout-records.js';
import { instancesPerNode, type World } from './world.js';

export interface UpgradeOptions {
  /** Names the rollout (`sim-<name>`) and its tasks. */
  name: string;
  spec: RolloutSpec;
  world: World;
  plan: BatchPlan;
  drainMode: 'migrate' | 'restart' | 'none';
  start: Date;
  /** Draws every random value of the run, in node order (a seeded generator from random.ts). */
  random: () => number;
  /** Share of forward installs that fail (the agent restores the old version), and that land broken. */
  failureRate: number;
  unhealthyRate: number;
  /** Mean install time; each node's is drawn within ±20 %. */
  installMs: number;
  /** Install times are whole multiples of this (default 1 ms). Coarser steps make nodes of a batch finish together: fewer ticks, same checks. */
  installStepMs?: number;
  drainBaseMs: number;
  drainMsPerInstance: number;
  decision: HumanChoice;
  decisionDelayMs: number;
  /** See DriveOptions.determinismEvery. */
  determinismEvery: number;
  /** Give up after this much virtual time (default 30 days). */
  maxVirtualMs?: number;
}

export interface UpgradeResult extends DriveResult {
  /** The per-node times the run used, for lower bounds. */
  times: NodeTimes;
  lowerBoundMs: number;
}

export function simulateUpgrade(options: UpgradeOptions): UpgradeResult {
  const { world, plan, spec, start } = options;
  const fate = new Map<string, { forward: InstallOutcome; installMs: number }>();
  for (const node of world.nodes) {
    const roll = options.random();
    const forward: InstallOutcome = roll < options.failureRate ? 'fails' : roll < options.failureRate + options.unhealthyRate ? 'unhealthy' : 'ok';
    const step = options.installStepMs ?? 1;
    fate.set(node.id, { forward, installMs: Math.max(step, Math.round((options.installMs * (0.8 + 0.4 * options.random())) / step) * step) });
  }
  const instancesOn = instancesPerNode(world.instances);
  const fleet = new FleetModel(
    world.nodes.map((n) => ({ id: n.id, region: n.region, version: '1.0.0', instances: instancesOn.get(n.id) ?? 0 })),
    {
      drainBaseMs: options.drainBaseMs,
      drainMsPerInstance: options.drainMsPerInstance,
      installMs: (id) => fate.get(id)?.installMs ?? options.installMs,
      outcome: (id, _version, rollback) => (rollback ? 'ok' : (fate.get(id)?.forward ?? 'ok')),
    },
  );
  const id = `sim-${options.name}`;
  const result = driveRollout({
    rollout: newRollout(spec, { id, drainMode: options.drainMode, batchCount: plan.batches.length }),
    tasks: tasksFromPlan(plan, id, () => '1.0.0', start),
    fleet,
    regionCaps: plan.regionCaps,
    start,
    decisionDelayMs: options.decisionDelayMs,
    choose: () => options.decision,
    maxVirtualMs: options.maxVirtualMs ?? 30 * 86_400_000,
    determinismEvery: options.determinismEvery,
  });
  const times: NodeTimes = {
    drainMs: (nodeId) => (options.drainMode === 'migrate' ? options.drainBaseMs + (instancesOn.get(nodeId) ?? 0) * options.drainMsPerInstance : 0),
    installMs: (nodeId) => fate.get(nodeId)?.installMs ?? options.installMs,
  };
  return { ...result, times, lowerBoundMs: lowerBoundMs(spec, plan, times) };
}
