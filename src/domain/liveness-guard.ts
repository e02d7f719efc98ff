import { deriveNodeStatus } from './node-status.js';
import type { Drain, FleetNode, NodeStatus } from './types.js';
import { EVENT } from './events.js';

/** What liveness reads of a node: a pass over a silent region loads thousands, so no more. */
export type LivenessNode = Pick<FleetNode, 'id' | 'hostname' | 'region' | 'status' | 'cordoned' | 'lastHeartbeatAt'>;

/**
 * A node is `down` for its own silence only, never for the operator's (issue 9, goal 5). Three
 * facts beyond the node's own heartbeat decide whether a silence can be blamed on the node:
 *
 * 1. what the operator has heard: a heartbeat that reached the operator but is not committed yet
 *    counts from its arrival, and silence is measured only up to the arrival of the oldest such
 *    heartbeat (everything older is in the snapshot); an agent sends its next heartbeat an
 *    interval after the reply to its last one, so a node whose heartbeat the operator has not
 *    answered yet is not silent at all, and one that was answered is silent from the reply;
 * 2. when the operator could not hear: before it took the lease, and while its heartbeat writes
 *    were backlogged or its passes stalled (deaf periods): silence then is not the node's;
 * 3. how much of the node's region went silent at once: when a large share did, the operator
 *    treats it as its own or the network's trouble and marks none of them down (Kubernetes' node
 *    lifecycle controller stops evictions in a zone past `unhealthyZoneThreshold` the same way).
 *
 * Held nodes keep their status, so their endpoints stay published. Each guard is a condition:
 * an event when it starts holding a node back and one when it stops, never one per pass.
 */

export interface RegionSilenceOptions {
  /** Share of a region's nodes silent at once that makes the silence the operator's or the network's trouble (0.55, Kubernetes' `unhealthyZoneThreshold`). */
  share: number;
  /** And at least this many nodes (3): one or two silent nodes are just dead nodes. */
  minNodes: number;
}

export const DEFAULT_REGION_SILENCE: RegionSilenceOptions = { share: 0.55, minNodes: 3 };

/** What the operator knows about its own hearing when it decides; every time is on the snapshot's clock. */
export interface HearingFacts {
  /** Every heartbeat that reached the operator before this instant is in the snapshot (default: `now`). */
  heardUntil?: Date;
  /** Arrival of heartbeats received and not committed yet, by node. */
  pending?: ReadonlyMap<string, Date>;
  /** Nodes with a heartbeat written (credential accepted) and not answered yet: they wait on the operator. */
  unanswered?: ReadonlySet<string>;
  /** When the operator last answered a written heartbeat, by node: the agent's next one is timed from then. */
  answeredAt?: ReadonlyMap<string, Date>;
  /** The operator has listened since then, as leader (default: forever). */
  listeningSince?: Date;
  /** Periods since then when it could not hear (see `nextHearing`); silence inside them is not the node's. */
  deaf?: readonly Period[];
  /** Conditions in force after the previous pass (see `livenessConditions`). */
  conditions?: ReadonlySet<string>;
}

export const LIVENESS_EVENTS = {
  operatorHeld: EVENT.fleet.liveness_held,
  operatorResumed: EVENT.fleet.liveness_resumed,
  regionSilent: EVENT.fleet.region_silent,
  regionSilenceEnded: EVENT.fleet.region_silence_ended,
} as const;

/** Event kinds that start a condition; their `data.condition` names it. */
const STARTS: ReadonlySet<string> = new Set([LIVENESS_EVENTS.operatorHeld, LIVENESS_EVENTS.regionSilent]);
const ENDS: ReadonlySet<string> = new Set([LIVENESS_EVENTS.operatorResumed, LIVENESS_EVENTS.regionSilenceEnded]);
export const LIVENESS_CONDITION_KINDS: readonly string[] = Object.values(LIVENESS_EVENTS);

const OPERATOR_CONDITION = 'operator';
const regionCondition = (region: string) => `region:${region}`;

export interface LivenessEvent {
  kind: string;
  data: Record<string, unknown>;
}

export interface LivenessDecision {
  /** The status every node should have after this pass. */
  status: Map<string, NodeStatus>;
  /** Condition changes only. */
  events: LivenessEvent[];
}

export interface Period {
  from: Date;
  to: Date;
}

/** Milliseconds of [from, to] covered by `periods` (disjoint). */
function coveredMs(periods: readonly Period[], from: number, to: number): number {
  let covered = 0;
  for (const p of periods) covered += Math.max(0, Math.min(to, p.to.getTime()) - Math.max(from, p.from.getTime()));
  return covered;
}

const later = (a: Date | null | undefined, b: Date | null | undefined): Date | null => {
  if (!a) return b ?? null;
  if (!b) return a;
  return a.getTime() >= b.getTime() ? a : b;
};

/**
 * Decides every node's status. Without `regionSilence` and hearing facts it is exactly
 * `deriveNodeStatus` per node; the guards only ever keep a live node from going down, they never
 * bring a down node up (only a heartbeat does).
 */
export function decideLiveness(
  nodes: readonly LivenessNode[],
  drainsByNode: ReadonlyMap<string, Pick<Drain, 'state'>>,
  now: Date,
  graceMs: number,
  regionSilence: RegionSilenceOptions | undefined,
  hearing: HearingFacts = {},
  /**
   * Nodes per region in all, when `nodes` holds only some of them: the operator loads just the
   * nodes that may change status (the silent, the down, the touched), and every node left out
   * has been heard within half a grace, so it is neither silent nor about to change.
   */
  regionTotals?: ReadonlyMap<string, number>,
): LivenessDecision {
  const heard = Math.min(now.getTime(), (hearing.heardUntil ?? now).getTime());
  const status = new Map<string, NodeStatus>();
  const asAlive = (node: LivenessNode) => deriveNodeStatus({ cordoned: node.cordoned, lastHeartbeatAt: now }, drainsByNode.get(node.id), now, graceMs);
  /** Silence the operator can blame on the node: from its last heartbeat (or from when the operator started listening) to what it has heard. */
  const ownSilence = (node: LivenessNode, last: Date | null) => {
    const since = later(last, hearing.listeningSince);
    if (since === null) return Number.POSITIVE_INFINITY;
    return heard - since.getTime() - coveredMs(hearing.deaf ?? [], since.getTime(), heard);
  };

  const operatorHeld: LivenessNode[] = [];
  const candidates: LivenessNode[] = [];
  const byRegion = new Map<string, { total: number; silent: number }>();
  for (const node of nodes) {
    const last = later(node.lastHeartbeatAt, hearing.pending?.get(node.id));
    const region = byRegion.get(node.region) ?? { total: regionTotals?.get(node.region) ?? 0, silent: 0 };
    byRegion.set(node.region, region);
    if (!regionTotals) region.total++;
    const derived = deriveNodeStatus({ cordoned: node.cordoned, lastHeartbeatAt: last }, drainsByNode.get(node.id), now, graceMs);
    status.set(node.id, derived);
    if (node.status === 'down') continue;
    // Waiting for the operator's reply a live node is not silent, and after it its silence counts
    // from the reply: the wait was the operator's.
    const silence = hearing.unanswered?.has(node.id) ? 0 : ownSilence(node, later(last, hearing.answeredAt?.get(node.id)));
    // Nodes that stopped within half a grace of each other went silent "at once": counting them
    // before they pass the grace lets the first of them be held too, not marked down alone.
    if (silence > graceMs / 2) region.silent++;
    if (derived !== 'down') continue;
    if (silence <= graceMs) operatorHeld.push(node);
    else candidates.push(node);
  }

  const active = new Map<string, LivenessEvent>();
  for (const node of operatorHeld) status.set(node.id, asAlive(node));
  if (operatorHeld.length > 0) {
    active.set(OPERATOR_CONDITION, {
      kind: LIVENESS_EVENTS.operatorHeld,
      data: {
        condition: OPERATOR_CONDITION,
        held: operatorHeld.length,
        reason: 'the operator could not hear every heartbeat in time (backlog, stalled passes or a new leader); nobody is marked down for it',
        heard_lag_ms: now.getTime() - heard,
        listening_for_ms: hearing.listeningSince ? now.getTime() - hearing.listeningSince.getTime() : null,
        deaf_ms: coveredMs(hearing.deaf ?? [], Number.NEGATIVE_INFINITY, now.getTime()),
      },
    });
  }
  if (regionSilence) {
    const silentRegions = new Map<string, { total: number; silent: number; held: number }>();
    for (const node of candidates) {
      const region = byRegion.get(node.region) as { total: number; silent: number };
      if (region.silent < regionSilence.minNodes || region.silent / region.total < regionSilence.share) continue;
      status.set(node.id, asAlive(node));
      const entry = silentRegions.get(node.region) ?? { ...region, held: 0 };
      entry.held++;
      silentRegions.set(node.region, entry);
    }
    for (const [region, { total, silent, held }] of silentRegions) {
      active.set(regionCondition(region), {
        kind: LIVENESS_EVENTS.regionSilent,
        data: { condition: regionCondition(region), region, silent, nodes: total, held, threshold: regionSilence.share, min_nodes: regionSilence.minNodes },
      });
    }
  }

  const previous = hearing.conditions ?? new Set<string>();
  const events: LivenessEvent[] = [];
  for (const [key, start] of [...active].sort(([a], [b]) => a.localeCompare(b))) if (!previous.has(key)) events.push(start);
  for (const key of [...previous].sort()) {
    if (active.has(key)) continue;
    if (key === OPERATOR_CONDITION) events.push({ kind: LIVENESS_EVENTS.operatorResumed, data: { condition: key } });
    else events.push({ kind: LIVENESS_EVENTS.regionSilenceEnded, data: { condition: key, region: key.slice('region:'.length) } });
  }
  return { status, events };
}

/** The conditions in force after `events` (a pass's or the event log's, oldest first) on top of `previous`. */
export function livenessConditions(previous: ReadonlySet<string>, events: readonly { kind: string; data: Record<string, unknown> }[]): Set<string> {
  const next = new Set(previous);
  for (const event of events) {
    const key = event.data.condition;
    if (typeof key !== 'string') continue;
    if (STARTS.has(event.kind)) next.add(key);
    else if (ENDS.has(event.kind)) next.delete(key);
  }
  return next;
}

export interface HearingState {
  listeningSince: Date;
  deaf: Period[];
}

export interface HearingTrouble {
  /** This pass runs under a lease term it did not run under before (or is the first pass). */
  tookOver: boolean;
  /**
   * Periods since the previous pass when the operator could not hear, on the snapshot's clock:
   * a heartbeat waited uncommitted longer than the tolerance (from its arrival to when that was
   * seen), the event loop or the reconcile loop stalled longer than it.
   */
  troubles: readonly Period[];
}

/**
 * How well the operator has been hearing, carried from pass to pass. A new leader (or the first
 * pass) starts listening now: last_heartbeat_at is as old as the outage, so every node gets a
 * fresh grace. After that, each trouble is a deaf period: silence inside it is not counted
 * against any node, so a stall of 3 s delays finding a dead node by 3 s, not by a grace.
 * Periods older than two graces are forgotten: a node silent since before one has been silent
 * that long after it too.
 */
export function nextHearing(previous: HearingState | undefined, now: Date, trouble: HearingTrouble, graceMs: number): HearingState {
  if (previous === undefined || trouble.tookOver) return { listeningSince: now, deaf: [] };
  const deaf = [...previous.deaf, ...trouble.troubles].filter((p) => now.getTime() - p.to.getTime() <= 2 * graceMs && p.to.getTime() > p.from.getTime());
  deaf.sort((a, b) => a.from.getTime() - b.from.getTime());
  const merged: Period[] = [];
  for (const p of deaf) {
    const top = merged.at(-1);
    if (top && p.from.getTime() <= top.to.getTime()) merged[merged.length - 1] = { from: top.from, to: later(top.to, p.to) as Date };
    else merged.push(p);
  }
  return { listeningSince: previous.listeningSince, deaf: merged };
}
