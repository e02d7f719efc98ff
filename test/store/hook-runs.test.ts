import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HookAction, HookSpec } from '../../src/domain/rollout/hooks.js';
import { loadDesiredStates } from '../../src/store/desired-state.js';
import { listEvents } from '../../src/store/events.js';
import { applyHookActions, finishOperatorHookRun, listHookRuns, loadHookRunFacts, recordHookReports } from '../../src/store/hook-runs.js';
import { registerNode } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { registerRequest } from '../support/store-fixtures.js';

const RUN: HookSpec = { run: ['/bin/stop-services'], timeout: 60_000, continueOnError: false, env: {} };
const HOOK: HookSpec = { webhook: 'http://127.0.0.1:9/open', timeout: 30_000, continueOnError: false, env: {} };

describe(`store/hook-runs on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let node: string;
  beforeAll(async () => {
    t = await createTestDb();
    node = (await registerNode(t.db, registerRequest('hook-node'), 'n-hook')).id;
    await t.db.query(
      `INSERT INTO rollouts (id, name, component, version, spec_input, spec, status, drain_mode, batch_count, plan, preflight, created_by)
       VALUES ('ro-h', 'ro-h', 'web', '2.0.0', '{}', '{}', 'running', 'none', 1, '{}', '{}', 'test')`,
    );
  });
  afterAll(async () => t.cleanup());

  const generation = async () => Number((await t.db.query<{ generation: string }>('SELECT generation FROM nodes WHERE id = $1', [node]))[0]?.generation);
  const start = (over: Partial<Extract<HookAction, { kind: 'start' }>> = {}): Extract<HookAction, { kind: 'start' }> => ({
    kind: 'start',
    id: 'ro-h/n-hook/preNode/0',
    rolloutId: 'ro-h',
    nodeId: node,
    point: 'preNode',
    index: 0,
    attempt: 1,
    hook: RUN,
    env: { DRYDOCK_PHASE: 'preNode' },
    ...over,
  });

  it('asks for a node hook in the desired state (generation bumped), records running then succeeded once, and drops it from the desired state', async () => {
    const g0 = await generation();
    expect(await applyHookActions(t.db, [start()], 'me')).toEqual({ nodes: [node], operatorRuns: [] });
    expect(await generation()).toBe(g0 + 1);
    expect((await loadDesiredStates(t.db, [node])).get(node)?.hooks).toEqual([
      { id: 'ro-h/n-hook/preNode/0', attempt: 1, point: 'preNode', run: ['/bin/stop-services'], timeout_ms: 60_000, env: { DRYDOCK_PHASE: 'preNode' } },
    ]);
    // Asked again (a decision taken twice): the same run, nothing new.
    expect((await applyHookActions(t.db, [start()], 'me')).nodes).toEqual([]);

    expect(await recordHookReports(t.db, node, [{ id: 'ro-h/n-hook/preNode/0', attempt: 1, status: 'running' }])).toEqual({ rollouts: ['ro-h'], desiredChanged: false });
    // Another node cannot report this node's run; a wrong attempt changes nothing.
    expect(await recordHookReports(t.db, 'someone-else', [{ id: 'ro-h/n-hook/preNode/0', attempt: 1, status: 'failed' }])).toEqual({ rollouts: [], desiredChanged: false });
    expect(await recordHookReports(t.db, node, [{ id: 'ro-h/n-hook/preNode/0', attempt: 2, status: 'failed' }])).toEqual({ rollouts: [], desiredChanged: false });
    const done = { id: 'ro-h/n-hook/preNode/0', attempt: 1, status: 'succeeded' as const, exit_code: 0, output_tail: 'stopped\n' };
    expect(await recordHookReports(t.db, node, [done])).toEqual({ rollouts: ['ro-h'], desiredChanged: true });
    // Reported again after an agent restart: recorded once.
    expect(await recordHookReports(t.db, node, [done])).toEqual({ rollouts: [], desiredChanged: false });
    expect((await loadDesiredStates(t.db, [node])).get(node)?.hooks).toBeUndefined();
    const [run] = await listHookRuns(t.db, 'ro-h');
    expect(run).toMatchObject({ status: 'succeeded', exit_code: 0, output_tail: 'stopped\n', attempt: 1, point: 'preNode', hook: '/bin/stop-services' });
    const kinds = (await listEvents(t.db, { rolloutId: 'ro-h', kindPrefix: 'rollout.hook_' })).map((e) => e.kind);
    expect(kinds).toEqual(['rollout.hook_started', 'rollout.hook_completed']);
    // A finished run is never opened again, whatever attempt is asked for.
    expect((await applyHookActions(t.db, [start({ attempt: 2 })], 'me')).nodes).toEqual([]);
    expect((await listHookRuns(t.db, 'ro-h'))[0]?.status).toBe('succeeded');
  });

  it('runs an operator hook as running, owned; an orphan is seen as such and restarted with the next attempt; only its owner records the outcome', async () => {
    const pre = start({ id: 'ro-h/-/preRollout/0', nodeId: null, point: 'preRollout', hook: HOOK });
    const first = await applyHookActions(t.db, [pre], 'leader-a');
    expect(first.operatorRuns).toEqual([{ id: 'ro-h/-/preRollout/0', rolloutId: 'ro-h', attempt: 1, hook: HOOK, env: { DRYDOCK_PHASE: 'preNode' } }]);
    let facts = await loadHookRunFacts(t.db, 'ro-h', () => false);
    expect(facts.get('ro-h/-/preRollout/0')).toMatchObject({ status: 'running', attempt: 1, orphaned: true });
    facts = await loadHookRunFacts(t.db, 'ro-h', (id) => id === 'ro-h/-/preRollout/0');
    expect(facts.get('ro-h/-/preRollout/0')?.orphaned).toBeUndefined();
    // A new leader restarts it; the old one's late outcome is refused.
    const second = await applyHookActions(t.db, [{ ...pre, attempt: 2 }], 'leader-b');
    expect(second.operatorRuns.map((r) => r.attempt)).toEqual([2]);
    const outcome = { status: 'succeeded' as const, exitCode: null, outputTail: 'ok', reason: null };
    expect(await finishOperatorHookRun(t.db, first.operatorRuns[0] as never, 'leader-a', outcome)).toBe(false);
    expect(await finishOperatorHookRun(t.db, second.operatorRuns[0] as never, 'leader-b', outcome)).toBe(true);
    expect((await loadHookRunFacts(t.db, 'ro-h', () => false)).get('ro-h/-/preRollout/0')).toMatchObject({ status: 'succeeded', attempt: 2 });
  });

  it('expires a run that never reported: failed with the reason, out of the desired state', async () => {
    await applyHookActions(t.db, [start({ id: 'ro-h/n-hook/postNode/0', point: 'postNode' })], 'me');
    const g = await generation();
    await applyHookActions(t.db, [{ kind: 'expire', id: 'ro-h/n-hook/postNode/0', nodeId: node, reason: 'no result within 60 s' }], 'me');
    expect(await generation()).toBe(g + 1);
    expect((await listHookRuns(t.db, 'ro-h')).find((r) => r.id === 'ro-h/n-hook/postNode/0')).toMatchObject({ status: 'failed', reason: 'no result within 60 s' });
    expect((await loadDesiredStates(t.db, [node])).get(node)?.hooks).toBeUndefined();
    // A late report of the expired run changes nothing.
    expect(await recordHookReports(t.db, node, [{ id: 'ro-h/n-hook/postNode/0', attempt: 1, status: 'succeeded', exit_code: 0 }])).toEqual({ rollouts: [], desiredChanged: false });
  });
});
