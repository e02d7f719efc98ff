import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FleetOptions, type FleetSnapshot, reconcileFleet, reconcileLiveness } from '../../src/domain/fleet-reconcile.js';
import {
  DEFAULT_REGION_SILENCE,
  type HearingFacts,
  LIVENESS_EVENTS,
  livenessConditions,
  nextHearing,
} from '../../src/domain/liveness-guard.js';
import { type FleetNode, NODE_STATUSES } from '../../src/domain/types.js';
import { ago, node as baseNode, NOW, REGIONS } from './fixtures.js';

const GRACE = 10_000;
const OPTIONS: FleetOptions = { heartbeatGraceMs: GRACE, migrationTimeoutMs: 120_000, regionSilence: DEFAULT_REGION_SILENCE };
const node = (id: string, region: string, ageMs: number | null, over: Partial<FleetNode> = {}): FleetNode =>
  baseNode(id, { region, lastHeartbeatAt: ageMs === null ? null : ago(ageMs), ...over });
const fleet = (nodes: FleetNode[]): FleetSnapshot => ({ nodes, deployments: [], instances: [], drains: [] });
const decide = (nodes: FleetNode[], hearing: HearingFacts = {}, options = OPTIONS) => reconcileFleet(fleet(nodes), NOW, options, hearing);
const downs = (actions: ReturnType<typeof decide>) => actions.nodeStatus.filter((s) => s.status === 'down').map((s) => s.nodeId);
const kinds = (actions: ReturnType<typeof decide>) => actions.events.map((e) => e.kind);

/** us-east heartbeats; eu-west's three nodes all stopped 12 s ago (past the 10 s grace). */
const SILENT_EU = [
  node('a1', 'us-east', 1_000),
  node('a2', 'us-east', 1_000),
  node('a3', 'us-east', 1_000),
  node('e1', 'eu-west', 12_000),
  node('e2', 'eu-west', 12_000),
  node('e3', 'eu-west', 12_000),
];

describe('region silence', () => {
  it('marks none of a region down when all of it goes silent at once, and says so once', () => {
    const actions = decide(SILENT_EU);
    expect(downs(actions)).toEqual([]);
    expect(actions.events).toEqual([
      {
        kind: LIVENESS_EVENTS.regionSilent,
        data: { condition: 'region:eu-west', region: 'eu-west', silent: 3, nodes: 3, held: 3, threshold: 0.55, min_nodes: 3 },
      },
    ]);
    const conditions = livenessConditions(new Set(), actions.events);
    expect(conditions).toEqual(new Set(['region:eu-west']));
    // The next pass with the condition in force announces nothing again.
    expect(decide(SILENT_EU, { conditions }).events).toEqual([]);
  });

  it('ends the condition with one event when the region heartbeats again', () => {
    const back = SILENT_EU.map((n) => ({ ...n, lastHeartbeatAt: ago(500) }));
    const actions = decide(back, { conditions: new Set(['region:eu-west']) });
    expect(actions.events).toEqual([{ kind: LIVENESS_EVENTS.regionSilenceEnded, data: { condition: 'region:eu-west', region: 'eu-west' } }]);
    expect(actions.nodeStatus).toEqual([]);
  });

  it('still marks a single silent node of a healthy region down', () => {
    const nodes = [...SILENT_EU.slice(0, 2), node('a3', 'us-east', 12_000)];
    const actions = decide(nodes);
    expect(downs(actions)).toEqual(['a3']);
    expect(kinds(actions)).toEqual(['node.down']);
  });

  it('needs at least min_nodes silent: two of a two-node region go down', () => {
    expect(downs(decide([node('e1', 'eu-west', 12_000), node('e2', 'eu-west', 12_000)]))).toEqual(['e1', 'e2']);
  });

  it('needs the share: 2 silent of 4 (50 % < 55 %) go down', () => {
    const nodes = [node('e1', 'eu-west', 12_000), node('e2', 'eu-west', 12_000), node('e3', 'eu-west', 0), node('e4', 'eu-west', 0)];
    expect(downs(decide(nodes, {}, { ...OPTIONS, regionSilence: { share: 0.55, minNodes: 2 } }))).toEqual(['e1', 'e2']);
  });

  it('counts nodes silent for half a grace, so the first of a region stopping together is not marked down alone', () => {
    const nodes = [node('e1', 'eu-west', 10_500), node('e2', 'eu-west', 6_000), node('e3', 'eu-west', 5_500)];
    const actions = decide(nodes);
    expect(downs(actions)).toEqual([]);
    expect(kinds(actions)).toEqual([LIVENESS_EVENTS.regionSilent]);
  });

  it('never brings a down node up: nodes already down stay down and do not count as going silent', () => {
    const nodes = [node('e1', 'eu-west', 60_000, { status: 'down' }), node('e2', 'eu-west', 12_000), node('e3', 'eu-west', 0), node('e4', 'eu-west', 0)];
    const actions = decide(nodes);
    expect(actions.nodeStatus).toEqual([{ nodeId: 'e2', status: 'down' }]);
  });

  it('is off without the option: every node is judged alone', () => {
    expect(downs(decide(SILENT_EU, {}, { heartbeatGraceMs: GRACE, migrationTimeoutMs: 1 }))).toEqual(['e1', 'e2', 'e3']);
  });
});

describe("the operator's own hearing", () => {
  it('counts a heartbeat from its arrival while it waits to be committed', () => {
    const nodes = [node('n1', 'us-east', 12_000), node('n2', 'eu-west', 12_000, { status: 'down' })];
    const actions = decide(nodes, { pending: new Map([['n1', ago(100)], ['n2', ago(100)]]) });
    expect(actions.nodeStatus).toEqual([{ nodeId: 'n2', status: 'ready' }]);
  });

  it('does not blame a node waiting for its reply: an unanswered heartbeat holds it, with one event, and brings no down node up', () => {
    const nodes = [node('n1', 'us-east', 12_000), node('n2', 'us-east', 12_000), node('n3', 'eu-west', 12_000, { status: 'down' })];
    const actions = decide(nodes, { unanswered: new Set(['n1', 'n3']) });
    expect(actions.nodeStatus).toEqual([{ nodeId: 'n2', status: 'down' }]);
    expect(kinds(actions)).toEqual(['node.down', LIVENESS_EVENTS.operatorHeld]);
    expect(actions.events[1]?.data).toMatchObject({ condition: 'operator', held: 1 });
  });

  it('counts silence from the reply to the last heartbeat: an agent times its next one from there', () => {
    // Heartbeat 12 s ago, answered 3 s ago (the operator took 9 s to reply): 3 s of the node's own silence.
    const nodes = [node('n1', 'us-east', 12_000), node('n2', 'us-east', 12_000)];
    const actions = decide(nodes, { answeredAt: new Map([['n1', ago(3_000)], ['n2', ago(11_000)]]) });
    expect(downs(actions)).toEqual(['n2']);
    expect(kinds(actions)).toEqual(['node.down', LIVENESS_EVENTS.operatorHeld]);
  });

  it('measures silence only up to what it has heard: a backlog holds nodes, with one event', () => {
    // The oldest uncommitted heartbeat arrived 4 s ago: the node's silence is 8 s of what was heard, not 12.
    const nodes = [node('n1', 'us-east', 12_000)];
    const actions = decide(nodes, { heardUntil: ago(4_000) });
    expect(downs(actions)).toEqual([]);
    expect(actions.events).toEqual([{ kind: LIVENESS_EVENTS.operatorHeld, data: expect.objectContaining({ condition: 'operator', held: 1, heard_lag_ms: 4_000 }) }]);
    const conditions = livenessConditions(new Set(), actions.events);
    expect(decide(nodes, { heardUntil: ago(4_000), conditions }).events).toEqual([]);
    // Once the backlog is gone the node's own silence counts, and the condition ends.
    const after = decide(nodes, { conditions });
    expect(downs(after)).toEqual(['n1']);
    expect(kinds(after)).toEqual(['node.down', LIVENESS_EVENTS.operatorResumed]);
  });

  it('gives every node a fresh grace from when it started listening (a new leader), without bringing any up', () => {
    const nodes = [node('n1', 'us-east', 300_000), node('n2', 'eu-west', 300_000), node('n3', 'ap-south', 300_000, { status: 'down' })];
    expect(downs(decide(nodes, { listeningSince: ago(GRACE) }))).toEqual([]);
    expect(decide(nodes, { listeningSince: ago(GRACE) }).nodeStatus).toEqual([]);
    expect(downs(decide(nodes, { listeningSince: ago(GRACE + 1) }))).toEqual(['n1', 'n2']);
  });
});

describe('nextHearing', () => {
  const state = { listeningSince: ago(60_000), deaf: [] };
  const quiet = { tookOver: false, troubles: [] };
  it('starts listening at now on the first pass and after a takeover', () => {
    expect(nextHearing(undefined, NOW, quiet, GRACE)).toEqual({ listeningSince: NOW, deaf: [] });
    const before = { listeningSince: ago(60_000), deaf: [{ from: ago(9_000), to: ago(8_000) }] };
    expect(nextHearing(before, NOW, { tookOver: true, troubles: [] }, GRACE)).toEqual({ listeningSince: NOW, deaf: [] });
  });

  it('keeps troubles as deaf periods, merged, and forgets them after two graces', () => {
    expect(nextHearing(state, NOW, quiet, GRACE)).toEqual(state);
    const one = nextHearing(state, NOW, { tookOver: false, troubles: [{ from: ago(4_000), to: ago(1_000) }] }, GRACE);
    expect(one).toEqual({ listeningSince: state.listeningSince, deaf: [{ from: ago(4_000), to: ago(1_000) }] });
    const merged = nextHearing(one, NOW, { tookOver: false, troubles: [{ from: ago(2_000), to: NOW }, { from: ago(9_000), to: ago(8_000) }] }, GRACE);
    expect(merged.deaf).toEqual([{ from: ago(9_000), to: ago(8_000) }, { from: ago(4_000), to: NOW }]);
    const old = nextHearing({ ...state, deaf: [{ from: ago(40_000), to: ago(2 * GRACE + 1) }] }, NOW, quiet, GRACE);
    expect(old.deaf).toEqual([]);
  });

  it('does not count a deaf period against a node: a 3 s stall delays finding it dead by 3 s, not by a grace', () => {
    const deaf = [{ from: ago(8_000), to: ago(5_000) }];
    expect(downs(decide([node('n1', 'us-east', 12_000)], { deaf }))).toEqual([]);
    expect(downs(decide([node('n1', 'us-east', 13_001)], { deaf }))).toEqual(['n1']);
  });
});

// Random fleets: nodes in three regions with any status and heartbeat age, some with a pending
// heartbeat, under any backlog, listening time and region rule.
const fleetArb = fc.record({
  nodes: fc.array(
    fc.record({
      region: fc.constantFrom(...REGIONS),
      status: fc.constantFrom(...NODE_STATUSES),
      ageMs: fc.option(fc.integer({ min: 0, max: 4 * GRACE }), { nil: null, freq: 8 }),
      pendingAgeMs: fc.option(fc.integer({ min: 0, max: 2 * GRACE }), { nil: null, freq: 1 }),
      unanswered: fc.constantFrom(false, false, false, true),
      answeredAgeMs: fc.option(fc.integer({ min: 0, max: 2 * GRACE }), { nil: null, freq: 1 }),
    }),
    { maxLength: 14 },
  ),
  heardLagMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 * GRACE })),
  listeningForMs: fc.option(fc.integer({ min: 0, max: 3 * GRACE }), { nil: null }),
  deaf: fc.option(fc.record({ startAgoMs: fc.integer({ min: 0, max: 3 * GRACE }), lengthMs: fc.integer({ min: 0, max: 2 * GRACE }) }), { nil: null }),
  share: fc.double({ min: 0.1, max: 1, noNaN: true }),
  minNodes: fc.integer({ min: 1, max: 5 }),
});

type RawFleet = typeof fleetArb extends fc.Arbitrary<infer T> ? T : never;

function build(raw: RawFleet) {
  const nodes = raw.nodes.map((r, k) => node(`n${k}`, r.region, r.ageMs, { status: r.status }));
  const pending = new Map(raw.nodes.flatMap((r, k) => (r.pendingAgeMs === null ? [] : [[`n${k}`, ago(r.pendingAgeMs)] as const])));
  const hearing: HearingFacts = {
    heardUntil: ago(raw.heardLagMs),
    pending,
    unanswered: new Set(raw.nodes.flatMap((r, k) => (r.unanswered ? [`n${k}`] : []))),
    answeredAt: new Map(raw.nodes.flatMap((r, k) => (r.answeredAgeMs === null ? [] : [[`n${k}`, ago(r.answeredAgeMs)] as const]))),
    ...(raw.listeningForMs === null ? {} : { listeningSince: ago(raw.listeningForMs) }),
    ...(raw.deaf === null ? {} : { deaf: [{ from: ago(raw.deaf.startAgoMs), to: ago(Math.max(0, raw.deaf.startAgoMs - raw.deaf.lengthMs)) }] }),
  };
  const options: FleetOptions = { ...OPTIONS, regionSilence: { share: raw.share, minNodes: raw.minNodes } };
  return { nodes, hearing, options, actions: reconcileFleet(fleet(nodes), NOW, options, hearing) };
}

const last = (n: FleetNode, hearing: HearingFacts): number | null => {
  const times = [n.lastHeartbeatAt, hearing.pending?.get(n.id)].filter((d): d is Date => d instanceof Date).map((d) => d.getTime());
  return times.length === 0 ? null : Math.max(...times);
};
/** The silence the operator can blame on the node, written out from the rule's statement. */
const ownSilence = (n: FleetNode, hearing: HearingFacts): number => {
  if (hearing.unanswered?.has(n.id)) return 0;
  const heard = (hearing.heardUntil ?? NOW).getTime();
  const since = Math.max(
    last(n, hearing) ?? Number.NEGATIVE_INFINITY,
    hearing.answeredAt?.get(n.id)?.getTime() ?? Number.NEGATIVE_INFINITY,
    hearing.listeningSince?.getTime() ?? Number.NEGATIVE_INFINITY,
  );
  // Time the operator could not hear does not count: subtract the deaf periods inside [since, heard].
  const deaf = (hearing.deaf ?? []).reduce((sum, p) => sum + Math.max(0, Math.min(heard, p.to.getTime()) - Math.max(since, p.from.getTime())), 0);
  return heard - since - deaf;
};

describe('liveness properties', () => {
  it('marks a node down only if its own last heartbeat is older than the grace and the region-silence rule does not hold', () => {
    fc.assert(
      fc.property(fleetArb, (raw) => {
        const { nodes, hearing, options, actions } = build(raw);
        const rule = options.regionSilence as { share: number; minNodes: number };
        for (const id of downs(actions)) {
          const n = nodes.find((x) => x.id === id) as FleetNode;
          const own = last(n, hearing);
          expect(own === null || NOW.getTime() - own > GRACE).toBe(true);
          expect(ownSilence(n, hearing)).toBeGreaterThan(GRACE);
          const region = nodes.filter((x) => x.region === n.region);
          const silent = region.filter((x) => x.status !== 'down' && ownSilence(x, hearing) > GRACE / 2).length;
          expect(silent < rule.minNodes || silent / region.length < rule.share).toBe(true);
        }
        const wentDown = actions.events.filter((e) => e.kind === 'node.down').map((e) => e.nodeId);
        expect(wentDown).toEqual(downs(actions).filter((id) => nodes.find((x) => x.id === id)?.status !== 'down'));
      }),
      { numRuns: 300 },
    );
  });

  it('never marks down a node that keeps heartbeating, whatever the others do', () => {
    fc.assert(
      fc.property(fleetArb, fc.array(fc.integer({ min: 0, max: GRACE }), { minLength: 1, maxLength: 4 }), fc.constantFrom(...REGIONS), (raw, keeperAges, region) => {
        const keepers = keeperAges.map((age, k) => node(`keeper${k}`, region, age));
        const { nodes, hearing, options } = build(raw);
        const actions = reconcileFleet(fleet([...nodes, ...keepers]), NOW, options, hearing);
        const status = new Map(actions.nodeStatus.map((s) => [s.nodeId, s.status]));
        for (const k of keepers) expect(status.get(k.id) ?? k.status).not.toBe('down');
      }),
      { numRuns: 300 },
    );
  });

  it('never brings a down node up without a heartbeat within the grace', () => {
    fc.assert(
      fc.property(fleetArb, (raw) => {
        const { nodes, hearing, actions } = build(raw);
        for (const change of actions.nodeStatus) {
          const n = nodes.find((x) => x.id === change.nodeId) as FleetNode;
          if (n.status !== 'down') continue;
          const own = last(n, hearing);
          expect(own !== null && NOW.getTime() - own <= GRACE).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('decides the same over the nodes the operator loads (silent past half a grace, down, never heard) with region totals as over the whole fleet', () => {
    fc.assert(
      fc.property(fleetArb, (raw) => {
        const { nodes, hearing, options } = build(raw);
        // The filter of loadLivenessSnapshot, on the stored heartbeat only (pending ones only make a node fresher).
        const loaded = nodes.filter((n) => n.status === 'down' || n.lastHeartbeatAt === null || NOW.getTime() - n.lastHeartbeatAt.getTime() > GRACE / 2);
        const regionTotals = new Map<string, number>();
        for (const n of nodes) regionTotals.set(n.region, (regionTotals.get(n.region) ?? 0) + 1);
        const full = reconcileLiveness({ nodes, drains: [] }, NOW, options, hearing);
        const scoped = reconcileLiveness({ nodes: loaded, drains: [], regionTotals }, NOW, options, hearing);
        const ids = new Set(loaded.map((n) => n.id));
        expect(scoped.nodeStatus).toEqual(full.nodeStatus.filter((c) => ids.has(c.nodeId)));
        expect(scoped.events).toEqual(full.events);
        // What only the whole-fleet pass changes is a fresh node's non-down status (a cordon or a
        // drain): the operator judges those nodes when the write that changed them touches them.
        for (const change of full.nodeStatus.filter((c) => !ids.has(c.nodeId))) expect(change.status).not.toBe('down');
      }),
      { numRuns: 300 },
    );
  });

  it('records a condition only when it changes: the same facts again announce nothing', () => {
    fc.assert(
      fc.property(fleetArb, (raw) => {
        const { nodes, hearing, options, actions } = build(raw);
        const conditions = livenessConditions(new Set(), actions.events);
        const again = reconcileFleet(fleet(nodes), NOW, options, { ...hearing, conditions });
        expect(again.events.filter((e) => e.kind.startsWith('fleet.'))).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});
