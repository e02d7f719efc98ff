import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PlannedMove } from '../../src/domain/rollout/plan.js';
import { planRollout } from '../../src/domain/rollout/plan.js';
import { PolicySchema } from '../../src/domain/rollout/policy.js';
import { runPreflight } from '../../src/domain/rollout/preflight.js';
import { parseRolloutSpec } from '../../src/domain/rollout/spec.js';
import type { Deployment, FleetNode, Instance } from '../../src/domain/types.js';
import { planInWorker } from '../../src/operator/plan-client.js';
import { computePlan, type PlanFacts } from '../../src/operator/plan-compute.js';
import { decodeMoves, encodeMoves, type PlanReply, renderBody } from '../../src/operator/plan-worker.js';
import { deployment, instance, node, REGIONS } from '../domain/fixtures.js';

/** A fleet of `count` nodes over the regions, 3 instances each (one stopped, one reported stopped), some pinned. */
function fleet(count: number) {
  const nodes: FleetNode[] = Array.from({ length: count }, (_, n) =>
    node(`node-${String(n).padStart(3, '0')}`, { region: REGIONS[n % REGIONS.length] as string, maxInstances: 5, labels: n % 4 === 0 ? { disk: 'ssd' } : {} }),
  );
  const deployments: Deployment[] = Array.from({ length: 7 }, (_, d) =>
    deployment(`dep-${d}`, { name: `app-${d}`, replicas: 4, minAvailable: 2, nodeSelector: d === 6 ? { labels: { disk: 'ssd' } } : null }),
  );
  const instances: Instance[] = nodes.flatMap((n, k) =>
    [0, 1, 2].map((j) =>
      instance(`inst-${k}-${j}`, `dep-${(k + j) % deployments.length}`, n.id, j === 2 ? { status: 'stopped' } : k % 5 === 0 && j === 1 ? { desired: 'stopped' } : {}),
    ),
  );
  return { nodes, deployments, instances };
}

/** The facts planFromStore would hand the worker for this fleet (every node on node-agent 1.0.0). */
function factsFor({ nodes, deployments, instances }: ReturnType<typeof fleet>, specInput: unknown): PlanFacts {
  const parsed = parseRolloutSpec(specInput);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
  return {
    spec: parsed.spec,
    overrides: [],
    operatorVersion: 'test',
    operatorVersions: ['test'],
    schemaVersion: 9,
    snapshot: {
      nodes: JSON.stringify(nodes.map((n) => [n.id, n.hostname, n.region, n.role, n.labels, n.status, n.cordoned, n.maxInstances, n.lastHeartbeatAt?.getTime() ?? null, '1.0.0'])),
      deployments: JSON.stringify(deployments.map((d) => [d.id, d.name, d.replicas, d.minAvailable, d.nodeSelector])),
      instances: {
        rows: JSON.stringify(instances.map((i) => [i.id, i.deploymentId, i.nodeId, i.desired, i.status, i.id.endsWith('-1') ? { replicas: 2, healthy_replicas: 2 } : null, null, null, null])),
        complete: true,
        count: instances.length,
        cursor: '100:100:',
        now: Date.parse('2026-01-01T00:00:00Z'),
      },
      running: [{ component: 'node-agent', version: '1.0.0' }],
    },
    artifact: { lifecycle: 'blessed', signed: true, disruptive: true },
    historyNodeSeconds: undefined,
    policies: [],
    published: [['1.0.0', 'live']],
    activeRolloutNodes: [],
    compatRules: [],
    quarantine: undefined,
  };
}

const SPEC = {
  name: 'worker-plan',
  target: { component: 'node-agent', version: '2.0.0' },
  strategy: { order: 'region-by-region', canary: { nodes: 1 }, batch: { size: 3 }, maxUnavailablePerRegion: 3, drain: { mode: 'migrate', nonMigratable: 'stop' } },
};

describe('the plan worker', () => {
  it('answers the same plan, field for field and in the same order, as planning in this thread', async () => {
    const facts = factsFor(fleet(40), SPEC);
    const local = computePlan(facts);
    const remote = await planInWorker(facts);
    expect(local.ok && remote.ok).toBe(true);
    expect(JSON.stringify(remote)).toBe(JSON.stringify(local));
    if (!remote.ok) return;
    expect(remote.fromVersions).toEqual(new Map(remote.plan.batches.flatMap((b) => b.nodes.map((n) => [n.id, '1.0.0']))));
    expect(remote.plan.moves.length).toBeGreaterThan(0);
    expect(remote.plan.pinned.length).toBeGreaterThan(0);
  });

  it('plans what the domain plans from the full rows: the compact snapshot loses nothing the plan reads', async () => {
    const f = fleet(30);
    const facts = factsFor(f, SPEC);
    const remote = await planInWorker(facts);
    if (!remote.ok) throw new Error('plan refused');
    const plan = planRollout({ spec: facts.spec, nodes: f.nodes, instances: f.instances, deployments: f.deployments, currentVersion: () => '1.0.0', disruptive: true });
    expect(remote.plan).toEqual(plan);
    const preflight = runPreflight({
      spec: facts.spec,
      plan,
      nodes: f.nodes,
      instances: f.instances.map((i) => ({ ...i, volume: i.id.endsWith('-1') ? { replicas: 2, healthy_replicas: 2 } : null, activity: null })),
      deployments: f.deployments,
      artifact: { lifecycle: 'blessed', signed: true },
      rollbackArtifacts: new Map([['1.0.0', 'live']]),
      fromVersions: remote.fromVersions,
      activeRolloutNodes: [],
      compatRules: [],
      running: new Map([
        ['operator', ['test']],
        ['node-agent', ['1.0.0']],
      ]),
      overrides: [],
    });
    expect(remote.preflight).toEqual(preflight);
  });

  it('answers several plans at once, each its own', async () => {
    const small = factsFor(fleet(6), SPEC);
    const large = factsFor(fleet(60), SPEC);
    const [a, b] = await Promise.all([planInWorker(small), planInWorker(large)]);
    expect(JSON.stringify(a)).toBe(JSON.stringify(computePlan(small)));
    expect(JSON.stringify(b)).toBe(JSON.stringify(computePlan(large)));
  });

  it('strengthens the spec by the policies that cover it, like planning in this thread', async () => {
    const facts = factsFor(fleet(6), SPEC);
    facts.policies = [PolicySchema.parse({ name: 'agents-need-approval', match: { component: 'node-agent' }, approval: { required: true, distinctApprover: true } })];
    const remote = await planInWorker(facts);
    expect(remote.ok && remote.policies.map((p) => p.name)).toEqual(['agents-need-approval']);
    expect(remote.ok && remote.spec.approval).toEqual({ required: true, distinctApprover: true });
    expect(JSON.stringify(remote)).toBe(JSON.stringify(computePlan(facts)));
  });
});

describe('the rendered body', () => {
  it('is, chunk after chunk, exactly the JSON of {spec, policies, plan, preflight}, whatever the chunk size', () => {
    const outcome = computePlan(factsFor(fleet(40), SPEC));
    if (!outcome.ok) throw new Error('plan refused');
    const { spec, policies, plan, preflight } = outcome;
    expect(plan.moves.length).toBeGreaterThan(5);
    for (const perChunk of [1, 3, plan.moves.length, 10_000]) {
      const replies: PlanReply[] = [];
      renderBody(7, outcome, (reply) => replies.push(reply), perChunk);
      expect(replies.at(-1)).toEqual({ id: 7, kind: 'rendered' });
      const chunks = replies.slice(0, -1).map((r) => (r.kind === 'chunk' ? Buffer.from(r.bytes).toString('utf8') : `unexpected ${r.kind}`));
      expect(chunks).toHaveLength(2 + Math.ceil(plan.moves.length / perChunk));
      expect(chunks.join('')).toBe(JSON.stringify({ spec, policies, plan, preflight }));
    }
  });

  it('says on its first chunk how many instances the worker keeps, and only there', () => {
    const outcome = computePlan(factsFor(fleet(40), SPEC));
    if (!outcome.ok) throw new Error('plan refused');
    const replies: PlanReply[] = [];
    renderBody(3, outcome, (reply) => replies.push(reply), 5, 120);
    const chunks = replies.filter((r) => r.kind === 'chunk');
    expect(chunks[0]).toMatchObject({ kept: 120 });
    expect(chunks.slice(1).every((r) => !('kept' in r))).toBe(true);
  });

  it('renders a plan with no moves as an empty list', () => {
    const outcome = computePlan(factsFor(fleet(6), { ...SPEC, strategy: { ...SPEC.strategy, drain: { mode: 'none' } } }));
    if (!outcome.ok) throw new Error('plan refused');
    expect(outcome.plan.moves).toEqual([]);
    const replies: PlanReply[] = [];
    renderBody(1, outcome, (reply) => replies.push(reply));
    const text = replies.map((r) => (r.kind === 'chunk' ? Buffer.from(r.bytes).toString('utf8') : '')).join('');
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify({ spec: outcome.spec, policies: outcome.policies, plan: outcome.plan, preflight: outcome.preflight })));
  });
});

const moveArbitrary = fc.record({
  instance_id: fc.string(),
  deployment: fc.constantFrom('app-a', 'app-b', 'ü\nnewline'),
  batch: fc.nat(50),
  from_node: fc.constantFrom('n1', 'n2', 'n3'),
  from_hostname: fc.constantFrom('h1', 'h2', 'h3', 'n1'),
  to_node: fc.option(fc.constantFrom('n1', 'n2', 'n4'), { nil: null }),
  to_hostname: fc.option(fc.constantFrom('h1', 'h4'), { nil: null }),
});

describe('moves in slices', () => {
  it('decode(encode(moves)) gives the moves back, whatever the slice size', () => {
    fc.assert(
      fc.property(fc.array(moveArbitrary, { maxLength: 60 }), fc.integer({ min: 1, max: 17 }), (moves, perSlice) => {
        // Both null or both set, as planRollout makes them.
        const planned: PlannedMove[] = moves.map((m) => (m.to_node === null || m.to_hostname === null ? { ...m, to_node: null, to_hostname: null } : m));
        const { strings, slices } = encodeMoves(planned, perSlice);
        const back: PlannedMove[] = [];
        for (const slice of slices) decodeMoves(slice, strings, back);
        expect(JSON.stringify(back)).toBe(JSON.stringify(planned));
        expect(slices.every((s) => s.instanceIds.length <= perSlice)).toBe(true);
      }),
    );
  });
});
