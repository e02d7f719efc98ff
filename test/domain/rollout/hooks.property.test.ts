// Hooks as properties of decideRollout (DESIGN.md §8.3, §8.5, §8.8 with §12): random hook lists
// and outcomes on random small fleets, driven in virtual time against a world that obeys every
// command and finishes every run it is asked for. Never is a finished run asked for again; no
// node installs before its preNode hooks passed, none is enabled after its health gate before
// its postNode hooks passed; nothing starts after a breaker trip until a person decides; the
// rollout ends, and `completed` only when every hook that must pass passed.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideRollout } from '../../../src/domain/rollout/decide.js';
import type { HookRunFact, HookSpec } from '../../../src/domain/rollout/hooks.js';
import { nodeHookId } from '../../../src/domain/rollout/hooks.js';
import { type NodeFacts, type Rollout, type RolloutTask, TERMINAL_ROLLOUT_STATUSES } from '../../../src/domain/rollout/model.js';
import { at, facts, rollout, spec, task } from './fixtures.js';

const hookArb = fc.record({ continueOnError: fc.boolean(), failRate: fc.constantFrom(0, 0.2, 0.5) });
const scenarioArb = fc.record({
  nodes: fc.integer({ min: 1, max: 5 }),
  pre: fc.array(hookArb, { maxLength: 2 }),
  post: fc.array(hookArb, { maxLength: 2 }),
  rolloutHooks: fc.array(hookArb, { maxLength: 1 }),
  drain: fc.constantFrom('migrate' as const, 'none' as const),
  maxConsecutiveFailures: fc.integer({ min: 1, max: 3 }),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
});

const asSpec = (h: { continueOnError: boolean }, i: number) => ({ run: [`/bin/hook-${i}`], timeout: '10s', continueOnError: h.continueOnError });

describe('hooks in decideRollout (property)', () => {
  it('never repeats a finished run, never installs before preNode or enables before postNode passed, and tells the truth at the end', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        let random = s.seed;
        const next = () => ((random = (random * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
        const r0 = rollout(
          spec(
            { batch: { size: 1 }, health: { minHealthyTime: '0s', timeout: '1m' }, circuitBreaker: { maxConsecutiveFailures: s.maxConsecutiveFailures } },
            { hooks: { preNode: s.pre.map(asSpec), postNode: s.post.map(asSpec), preRollout: s.rolloutHooks.map(asSpec), postRollout: s.rolloutHooks.map(asSpec) } },
          ),
          { batchCount: s.nodes, drainMode: s.drain },
        );
        let ro: Rollout = r0;
        const failRate = new Map<string, number>();
        const specOf = (id: string): HookSpec & { failRate: number } => {
          const [, , point, index] = id.split('/').slice(-4);
          const list = { preNode: s.pre, postNode: s.post, preRollout: s.rolloutHooks, postRollout: s.rolloutHooks }[point as 'preNode'] ?? [];
          const h = list[Number(index)] as { continueOnError: boolean; failRate: number };
          return { ...(asSpec(h, 0) as unknown as HookSpec), continueOnError: h.continueOnError, failRate: h.failRate };
        };
        let tasks: RolloutTask[] = Array.from({ length: s.nodes }, (_, i) => task(`n${i}`, { batch: i }));
        const nodes = new Map<string, NodeFacts>(tasks.map((t) => [t.nodeId, facts(t.nodeId)]));
        const runs = new Map<string, HookRunFact>();
        const passed = (id: string) => {
          const run = runs.get(id);
          return run !== undefined && (run.status === 'succeeded' || (run.status === 'failed' && specOf(id).continueOnError));
        };
        const nodePassed = (t: RolloutTask, point: 'preNode' | 'postNode') =>
          (point === 'preNode' ? s.pre : s.post).every((_, i) => passed(nodeHookId(t.id, t.direction, point, i)));
        let tripped = false;
        for (let tick = 1; tick < 2_000 && !TERMINAL_ROLLOUT_STATUSES.includes(ro.status); tick++) {
          const now = at(tick * 1_000);
          if (ro.status === 'awaiting_decision') {
            // A person says continue.
            ro = { ...ro, status: 'running', breakerResetAt: now };
            tripped = false;
            continue;
          }
          const d = decideRollout(ro, tasks, nodes, now, new Set(), (id) => runs.get(id));
          for (const a of d.hooks ?? []) {
            if (a.kind === 'start') {
              const before = runs.get(a.id);
              expect(before === undefined || before.status === 'requested' || before.status === 'running', `a finished run asked for again: ${a.id}`).toBe(true);
              failRate.set(a.id, specOf(a.id).failRate);
              runs.set(a.id, { id: a.id, attempt: a.attempt, status: next() < (failRate.get(a.id) ?? 0) ? 'failed' : 'succeeded', requestedAt: now, startedAt: now, reason: 'exit code 1' });
            } else runs.set(a.id, { ...(runs.get(a.id) as HookRunFact), status: 'failed', reason: a.reason });
          }
          if (tripped) expect(d.tasks.filter((c) => c.from === 'pending' && c.changes.state !== 'skipped'), 'a node started after the breaker tripped').toEqual([]);
          const byId = new Map(tasks.map((t) => [t.id, t]));
          for (const change of d.tasks) {
            const t = byId.get(change.id) as RolloutTask;
            expect(t.state).toBe(change.from);
            byId.set(t.id, { ...t, ...change.changes });
          }
          for (const c of d.commands) {
            const t = [...byId.values()].find((x) => x.nodeId === c.nodeId) as RolloutTask;
            const f = nodes.get(c.nodeId) as NodeFacts;
            if (c.kind === 'set_version') {
              if (!c.rollback) expect(nodePassed(t, 'preNode'), `installed ${t.id} before its preNode hooks passed`).toBe(true);
              nodes.set(c.nodeId, { ...f, version: c.version ?? undefined, install: c.version ? { version: c.version, phase: 'done', at: now } : undefined });
            } else if (c.kind === 'cordon') nodes.set(c.nodeId, { ...f, cordoned: true });
            else if (c.kind === 'drain') nodes.set(c.nodeId, { ...f, drainState: 'completed' });
            else {
              if (t.state === 'done') expect(nodePassed(t, 'postNode'), `enabled ${t.id} before its postNode hooks passed`).toBe(true);
              nodes.set(c.nodeId, { ...f, cordoned: false, drainState: null });
            }
          }
          tasks = tasks.map((t) => byId.get(t.id) as RolloutTask);
          ro = { ...ro, ...d.rollout };
          if (ro.status === 'awaiting_decision') tripped = true;
        }
        expect(TERMINAL_ROLLOUT_STATUSES).toContain(ro.status);
        if (ro.status === 'completed') {
          for (const [id] of runs) expect(passed(id), `completed although ${id} failed`).toBe(true);
          for (const t of tasks) {
            expect(t.state).toBe('done');
            expect(nodePassed(t, 'preNode') && nodePassed(t, 'postNode')).toBe(true);
          }
          if (s.rolloutHooks.length > 0) expect(runs.has(`${ro.id}/-/postRollout/0`)).toBe(true);
        }
        // A task that failed in a hook names it.
        for (const t of tasks) if (t.state === 'failed') expect(t.lastError).toMatch(/^(preNode|postNode) hook \d+ /);
      }),
      { numRuns: 300 },
    );
  });
});
