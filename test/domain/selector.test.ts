import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPinned, matchesSelector } from '../../src/domain/selector.js';
import { NODE_ROLES, type FleetNode } from '../../src/domain/types.js';
import { node as baseNode, REGIONS } from './fixtures.js';

/** n1 on host-1, labelled disk=ssd and zone=a: the node every selector here is matched against. */
const node = (over: Partial<FleetNode> = {}): FleetNode => baseNode('n1', { hostname: 'host-1', labels: { disk: 'ssd', zone: 'a' }, ...over });

describe('matchesSelector', () => {
  it('matches every node when there is no selector or it is empty', () => {
    expect(matchesSelector(node(), null)).toBe(true);
    expect(matchesSelector(node(), {})).toBe(true);
    expect(matchesSelector(node(), { labels: {} })).toBe(true);
  });

  it('checks each field the selector sets', () => {
    expect(matchesSelector(node(), { hostname: 'host-1' })).toBe(true);
    expect(matchesSelector(node(), { hostname: 'host-2' })).toBe(false);
    expect(matchesSelector(node(), { region: 'us-east' })).toBe(true);
    expect(matchesSelector(node(), { region: 'eu-west' })).toBe(false);
    expect(matchesSelector(node(), { role: 'worker' })).toBe(true);
    expect(matchesSelector(node(), { role: 'control-plane' })).toBe(false);
  });

  it('needs every label to be present with the same value', () => {
    expect(matchesSelector(node(), { labels: { disk: 'ssd' } })).toBe(true);
    expect(matchesSelector(node(), { labels: { disk: 'ssd', zone: 'a' } })).toBe(true);
    expect(matchesSelector(node(), { labels: { disk: 'hdd' } })).toBe(false);
    expect(matchesSelector(node(), { labels: { gpu: 'yes' } })).toBe(false);
  });

  it('needs all fields at once', () => {
    expect(matchesSelector(node(), { region: 'us-east', role: 'worker', labels: { zone: 'a' } })).toBe(true);
    expect(matchesSelector(node(), { region: 'us-east', role: 'control-plane' })).toBe(false);
  });

  it('a selector made of a subset of a node’s own facts matches it; changing one fact breaks the match', () => {
    const nodeArb = fc.record({
      hostname: fc.constantFrom('h1', 'h2', 'h3'),
      region: fc.constantFrom(...REGIONS),
      role: fc.constantFrom(...NODE_ROLES),
      labels: fc.dictionary(fc.constantFrom('disk', 'zone', 'gpu'), fc.constantFrom('a', 'b')),
    });
    fc.assert(
      fc.property(nodeArb, fc.boolean(), fc.boolean(), fc.boolean(), fc.boolean(), (facts, useHost, useRegion, useRole, useLabels) => {
        const n = node(facts);
        const selector = {
          ...(useHost ? { hostname: n.hostname } : {}),
          ...(useRegion ? { region: n.region } : {}),
          ...(useRole ? { role: n.role } : {}),
          ...(useLabels ? { labels: { ...n.labels } } : {}),
        };
        expect(matchesSelector(n, selector)).toBe(true);
        expect(matchesSelector({ ...n, hostname: `${n.hostname}-other` }, selector)).toBe(!useHost);
        expect(matchesSelector({ ...n, region: `${n.region}-other` }, selector)).toBe(!useRegion);
      }),
      { numRuns: 200 },
    );
  });
});

describe('isPinned', () => {
  it('pins only deployments that set a selector', () => {
    expect(isPinned(null)).toBe(false);
    expect(isPinned({})).toBe(false);
    expect(isPinned({ hostname: 'host-1' })).toBe(true);
    expect(isPinned({ region: 'us-east' })).toBe(true);
    expect(isPinned({ labels: { disk: 'ssd' } })).toBe(true);
  });
});
