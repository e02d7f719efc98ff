// The simulated fleet: nodes that obey a rollout's node commands (cordon, drain, set_version)
// in virtual time, reduced to the facts a rollout reads from heartbeats (NodeFacts).
import type { InstallPhase } from '../domain/protocol.js';
import type { NodeCommand, NodeFacts } from '../domain/rollout/model.js';
import type { DrainState } from '../domain/types.js';
import { TimerHeap } from './timer-heap.js';

/** What an install does: lands, fails (the agent keeps or restores the old version), or lands broken (the node stops heartbeating). */
export type InstallOutcome = 'ok' | 'fails' | 'unhealthy';

export interface FleetModelOptions {
  /** Drain time: a fixed part plus a part per instance moved. */
  drainBaseMs: number;
  drainMsPerInstance: number;
  installMs: (nodeId: string) => number;
  outcome: (nodeId: string, version: string | null, rollback: boolean) => InstallOutcome;
  /** Nodes whose drain fails (no room for their instances). */
  drainFails?: (nodeId: string) => boolean;
}

export interface SimNodeInit {
  id: string;
  region: string;
  version: string | undefined;
  instances: number;
}

export interface SimNode extends SimNodeInit {
  cordoned: boolean;
  drain: { state: DrainState; until: number; fails: boolean } | null;
  install: { version: string | null; phase: InstallPhase; until: number; outcome: InstallOutcome; reason?: string; reportedAt: number } | null;
  /** Runs a broken version: no heartbeat, unhealthy instances. */
  sick: boolean;
}

/** The fleet as the operator sees it through heartbeats, reduced to what a rollout reads. */
export class FleetModel {
  readonly nodes = new Map<string, SimNode>();
  readonly facts = new Map<string, NodeFacts>();
  /** set_version commands per node, in order: what the operator asked each node to run. */
  readonly versionRequests = new Map<string, { version: string | null; rollback: boolean }[]>();

  constructor(
    init: readonly SimNodeInit[],
    private readonly options: FleetModelOptions,
  ) {
    for (const n of init) {
      const node: SimNode = { ...n, cordoned: false, drain: null, install: null, sick: false };
      this.nodes.set(n.id, node);
      this.facts.set(n.id, this.factsOf(node));
    }
  }

  private factsOf(node: SimNode): NodeFacts {
    const draining = node.drain?.state === 'running' || node.drain?.state === 'blocked';
    return {
      id: node.id,
      status: node.sick ? 'down' : draining ? 'draining' : node.cordoned ? 'cordoned' : 'ready',
      cordoned: node.cordoned,
      drainState: node.drain?.state ?? null,
      drainMessage: node.drain?.state === 'failed' ? 'no room for 3 instances' : '',
      version: node.version,
      install: node.install
        ? { version: node.install.version ?? '', phase: node.install.phase, reason: node.install.reason, at: new Date(node.install.reportedAt) }
        : undefined,
      instancesHealthy: !node.sick || node.instances === 0,
    };
  }

  /** When each drain and install under way ends, earliest first (stale entries are skipped: see running). */
  private readonly timers = new TimerHeap<SimNode>();

  /** Nodes cordoned, draining or installing per region, what a region's budget counts (DESIGN.md §8.2), kept as nodes change so a tick need not count them. */
  readonly unavailableByRegion = new Map<string, number>();
  private readonly unavailable = new Set<SimNode>();

  private refresh(node: SimNode): void {
    this.facts.set(node.id, this.factsOf(node));
    const unavailable = node.cordoned || node.drain?.state === 'running' || node.install?.phase === 'installing';
    if (unavailable === this.unavailable.has(node)) return;
    if (unavailable) this.unavailable.add(node);
    else this.unavailable.delete(node);
    this.unavailableByRegion.set(node.region, (this.unavailableByRegion.get(node.region) ?? 0) + (unavailable ? 1 : -1));
  }

  apply(command: NodeCommand, now: number): void {
    const node = this.nodes.get(command.nodeId);
    if (!node) return;
    switch (command.kind) {
      case 'cordon':
        node.cordoned = true;
        break;
      case 'enable':
        node.cordoned = false;
        break;
      case 'drain':
        node.drain = {
          state: 'running',
          until: now + this.options.drainBaseMs + node.instances * this.options.drainMsPerInstance,
          fails: this.options.drainFails?.(node.id) ?? false,
        };
        this.timers.push(node.drain.until, node);
        break;
      case 'set_version': {
        const list = this.versionRequests.get(node.id) ?? [];
        list.push({ version: command.version, rollback: command.rollback });
        this.versionRequests.set(node.id, list);
        if ((node.version ?? null) === command.version && !node.sick) {
          node.install = { version: command.version, phase: 'done', until: now, outcome: 'ok', reportedAt: now };
        } else {
          // Going back from a broken version restores the backup the agent kept (DESIGN.md §8.4:
          // the node returns by itself); only a rollback of a healthy node may fail.
          const outcome = command.rollback && node.sick ? 'ok' : this.options.outcome(node.id, command.version, command.rollback);
          node.install = { version: command.version, phase: 'installing', until: now + this.options.installMs(node.id), outcome, reportedAt: now };
          this.timers.push(node.install.until, node);
        }
        break;
      }
    }
    this.refresh(node);
  }

  /** Whether a drain or install of `node` is under way and ends at `at` (else a timer entry is stale). */
  private running(node: SimNode, at: number): boolean {
    return (node.drain?.state === 'running' && node.drain.until === at) || (node.install?.phase === 'installing' && node.install.until === at);
  }

  /** Finishes every drain and install due by `now`. */
  advance(now: number): void {
    for (let at = this.timers.peekTime(); at !== null && at <= now; at = this.timers.peekTime()) {
      const node = this.timers.peekItem() as SimNode;
      this.timers.pop();
      if (!this.running(node, at)) continue;
      let changed = false;
      if (node.drain?.state === 'running' && node.drain.until <= now) {
        node.drain.state = node.drain.fails ? 'failed' : 'completed';
        if (!node.drain.fails) node.instances = 0;
        changed = true;
      }
      const install = node.install;
      if (install?.phase === 'installing' && install.until <= now) {
        install.reportedAt = install.until;
        if (install.outcome === 'fails') {
          install.phase = 'reverted';
          install.reason = 'boot assessment failed, previous version restored';
          node.sick = false;
        } else {
          install.phase = 'done';
          node.version = install.version ?? undefined;
          node.sick = install.outcome === 'unhealthy';
        }
        changed = true;
      }
      if (changed) this.refresh(node);
    }
  }

  /** The next instant a drain or install finishes, if any is under way. */
  nextEventAt(): number | null {
    for (let at = this.timers.peekTime(); at !== null; at = this.timers.peekTime()) {
      if (this.running(this.timers.peekItem() as SimNode, at)) return at;
      this.timers.pop();
    }
    return null;
  }

  /** Lets every install and drain under way finish (after the rollout ended). */
  settle(now: number): number {
    let t = now;
    for (let next = this.nextEventAt(); next !== null; next = this.nextEventAt()) {
      t = Math.max(t, next);
      this.advance(t);
    }
    return t;
  }
}
