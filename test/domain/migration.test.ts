import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseMigrationTarget } from '../../src/domain/migration.js';
import { matchesSelector } from '../../src/domain/selector.js';
import { type Deployment, INSTANCE_STATUSES, NODE_STATUSES, type NodeSelector } from '../../src/domain/types.js';
import { deployment as baseDeployment, instance, node } from './fixtures.js';

/** Here a deployment defaults to two replicas, one of which must stay available. */
const deployment = (id: string, over: Partial<Deployment> = {}): Deployment => baseDeployment(id, { replicas: 2, minAvailable: 1, ...over });

const web = deployment('web');
const pinnedDb = deployment('db', { nodeSelector: { hostname: 'host-n1' } });

describe('chooseMigrationTarget', () => {
  const nodes = [node('n1'), node('n2'), node('n3', { region: 'eu-west' })];
  const w1 = instance('w1', 'web', 'n1');

  it('refuses an instance that is not running or is itself a replacement', () => {
    const stopped = instance('w1', 'web', 'n1', { desired: 'stopped' });
    expect(chooseMigrationTarget(stopped, web, nodes, [stopped], {})).toMatchObject({ ok: false, error: 'not_running' });
    const replacement = instance('w2', 'web', 'n2', { replaces: 'w1' });
    expect(chooseMigrationTarget(replacement, web, nodes, [w1, replacement], {})).toMatchObject({ ok: false, error: 'not_running' });
  });

  it('refuses a second migration of the same instance and names the replacement in flight', () => {
    const replacement = instance('w1-new', 'web', 'n2', { replaces: 'w1', published: false });
    expect(chooseMigrationTarget(w1, web, nodes, [w1, replacement], {})).toEqual({
      ok: false,
      error: 'in_progress',
      reason: 'already migrating',
      replacement: 'w1-new',
    });
  });

  it('refuses a pinned instance without force', () => {
    const p1 = instance('p1', 'db', 'n1');
    expect(chooseMigrationTarget(p1, pinnedDb, nodes, [p1], {})).toMatchObject({ ok: false, error: 'pinned' });
    expect(chooseMigrationTarget(p1, pinnedDb, nodes, [p1], { force: false, targetNodeId: 'n2' })).toMatchObject({ ok: false, error: 'pinned' });
  });

  it('moves a pinned instance with force, ignoring its selector', () => {
    const p1 = instance('p1', 'db', 'n1');
    expect(chooseMigrationTarget(p1, pinnedDb, nodes, [p1], { force: true })).toMatchObject({ ok: true, target: { id: 'n2' } });
    expect(chooseMigrationTarget(p1, pinnedDb, nodes, [p1], { force: true, targetNodeId: 'n3' })).toMatchObject({ ok: true, target: { id: 'n3' } });
  });

  it('refuses the node the instance already runs on', () => {
    expect(chooseMigrationTarget(w1, web, nodes, [w1], { targetNodeId: 'n1' })).toEqual({
      ok: false,
      error: 'target_invalid',
      reason: 'it is the node the instance runs on',
    });
  });

  it('refuses an unknown target', () => {
    expect(chooseMigrationTarget(w1, web, nodes, [w1], { targetNodeId: 'nope' })).toEqual({ ok: false, error: 'target_invalid', reason: 'no such node' });
  });

  it('refuses a full target', () => {
    const small = [node('n1'), node('n2', { maxInstances: 1 })];
    const other = instance('o1', 'other', 'n2');
    expect(chooseMigrationTarget(w1, web, small, [w1, other], { targetNodeId: 'n2' })).toEqual({
      ok: false,
      error: 'target_invalid',
      reason: 'node is full',
    });
  });

  it('counts an instance that is still stopping as taking its slot on the target', () => {
    const small = [node('n1'), node('n2', { maxInstances: 1 })];
    const stopping = instance('o1', 'other', 'n2', { desired: 'stopped', status: 'stopping', published: false });
    expect(chooseMigrationTarget(w1, web, small, [w1, stopping], { targetNodeId: 'n2' })).toMatchObject({ ok: false, reason: 'node is full' });
    expect(chooseMigrationTarget(w1, web, small, [w1, stopping], {})).toMatchObject({ ok: false, error: 'no_capacity' });
    const gone = { ...stopping, status: 'stopped' as const };
    expect(chooseMigrationTarget(w1, web, small, [w1, gone], { targetNodeId: 'n2' })).toMatchObject({ ok: true, target: { id: 'n2' } });
  });

  it.each(['cordoned', 'draining', 'down', 'upgrading', 'verifying'] as const)('refuses a %s target', (status) => {
    const withStatus = [node('n1'), node('n2', { status })];
    expect(chooseMigrationTarget(w1, web, withStatus, [w1], { targetNodeId: 'n2' })).toEqual({
      ok: false,
      error: 'target_invalid',
      reason: `node is ${status}`,
    });
  });

  it('reports no capacity when no other ready node has room', () => {
    const full = [node('n1'), node('n2', { maxInstances: 1 }), node('n3', { status: 'cordoned' }), node('n4', { status: 'down' })];
    const other = instance('o1', 'other', 'n2');
    expect(chooseMigrationTarget(w1, web, full, [w1, other], {})).toEqual({ ok: false, error: 'no_capacity', reason: 'no ready node with room' });
    expect(chooseMigrationTarget(w1, web, [node('n1')], [w1], {})).toMatchObject({ ok: false, error: 'no_capacity' });
  });

  it('prefers a node in the same region, even a busier one', () => {
    const fleet = [node('n1'), node('n2', { region: 'eu-west' }), node('n3'), node('n4', { region: 'ap-south' })];
    const busy = [instance('o1', 'other', 'n3'), instance('o2', 'other', 'n3')];
    expect(chooseMigrationTarget(w1, web, fleet, [w1, ...busy], {})).toMatchObject({ ok: true, target: { id: 'n3' } });
  });

  it('leaves the region when the only same-region node already hosts a replica', () => {
    const fleet = [node('n1'), node('n2', { region: 'eu-west' }), node('n3')];
    const sibling = instance('w2', 'web', 'n3');
    expect(chooseMigrationTarget(w1, web, fleet, [w1, sibling], {})).toMatchObject({ ok: true, target: { id: 'n2' } });
  });

  it('picks a ready node with room other than the source, matching the selector unless forced', () => {
    const arb = fc.record({
      nodes: fc.array(
        fc.record({
          region: fc.constantFrom('us-east', 'eu-west'),
          disk: fc.constantFrom('ssd', 'hdd'),
          status: fc.constantFrom(...NODE_STATUSES),
          maxInstances: fc.integer({ min: 0, max: 3 }),
          others: fc.array(fc.record({ status: fc.constantFrom(...INSTANCE_STATUSES), desired: fc.constantFrom<'running' | 'stopped'>('running', 'stopped') }), {
            maxLength: 4,
          }),
        }),
        { minLength: 1, maxLength: 6 },
      ),
      selector: fc.constantFrom<NodeSelector | null>(null, {}, { labels: { disk: 'ssd' } }, { region: 'eu-west' }),
      target: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
      force: fc.boolean(),
    });
    fc.assert(
      fc.property(arb, ({ nodes: raw, selector, target, force }) => {
        const fleet = raw.map((r, k) => node(`n${k}`, { region: r.region, labels: { disk: r.disk }, status: r.status, maxInstances: r.maxInstances }));
        const others = raw.flatMap((r, k) => r.others.map((o, j) => instance(`o${k}-${j}`, 'other', `n${k}`, o)));
        const subject = instance('subject', 'd', 'n0');
        const instances = [subject, ...others];
        const d = deployment('d', { nodeSelector: selector });
        const choice = chooseMigrationTarget(subject, d, fleet, instances, { targetNodeId: target === undefined ? undefined : `n${target}`, force });
        if (!choice.ok) return;
        const pinned = selector !== null && Object.keys(selector).length > 0;
        expect(pinned && !force).toBe(false);
        expect(choice.target.id).not.toBe('n0');
        expect(choice.target.status).toBe('ready');
        const used = instances.filter((i) => i.nodeId === choice.target.id && i.status !== 'stopped').length;
        expect(used).toBeLessThan(choice.target.maxInstances);
        if (!pinned) expect(matchesSelector(choice.target, selector)).toBe(true);
        if (target !== undefined) expect(choice.target.id).toBe(`n${target}`);
      }),
      { numRuns: 200 },
    );
  });
});
