// Rollout hooks (DESIGN.md §5, §12): real steps of a rollout. preRollout and postRollout run on
// the operator leader before the first batch and after the last; preNode and postNode run on the
// node, by its agent, after cordon/drain and before the install, and after the health gate and
// before the node is enabled again. Each point holds a list, run in order, one at a time. This
// file holds the spec's shape and the pure decision "which hook runs next, and is the point
// passed or failed" from the journal of runs (hook_runs rows, as facts).
import { z } from 'zod';
import { parseDuration } from '../duration.js';

export const HOOK_POINTS = ['preRollout', 'preNode', 'postNode', 'postRollout'] as const;
export type HookPoint = (typeof HOOK_POINTS)[number];
export const NODE_HOOK_POINTS: readonly HookPoint[] = ['preNode', 'postNode'];

/** Hooks per point (default none): 20 is far past any runbook and bounds a spec's size. */
const MAX_HOOKS_PER_POINT = 20;
/** A hook's default timeout: long enough to stop services, short enough to notice a hang. */
export const DEFAULT_HOOK_TIMEOUT = '1m';
/** The longest a hook may run: a hook that needs longer is a job of its own. */
const MAX_HOOK_TIMEOUT_MS = 6 * 3_600_000;
/** How long after its timeout a hook may still report before the operator gives up on it (an agent restarting, a slow heartbeat). */
export const HOOK_REPORT_GRACE_MS = 30_000;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

const hookTimeout = z
  .union([z.string().max(100), z.number()])
  .default(DEFAULT_HOOK_TIMEOUT)
  .refine((v) => parseDuration(v) !== null, 'a duration like "30s", "2m" or a number of seconds')
  .transform((v) => parseDuration(v) as number)
  .refine((ms) => ms >= 1 && ms <= MAX_HOOK_TIMEOUT_MS, 'more than 0 and at most 6h');

const common = {
  timeout: hookTimeout,
  /** Default false: a failed hook fails its task (or its rollout, for preRollout/postRollout). */
  continueOnError: z.boolean().default(false),
  /** Extra environment (a command) or extra fields under `env` (a webhook's body); DRYDOCK_* are reserved. */
  env: z
    .record(z.string().regex(ENV_NAME, 'an environment variable name like SERVICE_NAME'), z.string().max(4096).refine((v) => !v.includes('\u0000'), 'no NUL bytes'))
    .refine((env) => Object.keys(env).length <= 64, 'at most 64 variables')
    .refine((env) => Object.keys(env).every((k) => !k.startsWith('DRYDOCK_')), 'DRYDOCK_* variables are set by drydock')
    .default({}),
};

const argv = z
  .array(z.string().min(1).max(4096).refine((v) => !v.includes('\u0000'), 'no NUL bytes'))
  .min(1, 'the command and its arguments, like ["/usr/local/bin/stop-services", "--now"]')
  .max(256);

const webhookUrl = z
  .string()
  .max(2048)
  .refine((v) => {
    try {
      const url = new URL(v);
      return url.protocol === 'http:' || url.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'an http:// or https:// URL');

export const HookSchema = z.union(
  [z.object({ run: argv, ...common }).strict(), z.object({ webhook: webhookUrl, ...common }).strict()],
  { error: 'a hook is either { run: [command, args...], timeout?, continueOnError?, env? } or { webhook: url, timeout?, continueOnError?, env? }' },
);
export type HookSpec = z.output<typeof HookSchema>;

const hookList = z.array(HookSchema).max(MAX_HOOKS_PER_POINT).default([]);
export const HooksSchema = z
  .object({ preRollout: hookList, preNode: hookList, postNode: hookList, postRollout: hookList })
  .strict()
  .prefault({});
export type RolloutHooks = z.output<typeof HooksSchema>;

export const HOOK_RUN_STATUSES = ['requested', 'running', 'succeeded', 'failed'] as const;
export type HookRunStatus = (typeof HOOK_RUN_STATUSES)[number];

/** One run of a hook as the journal (hook_runs) knows it. */
export interface HookRunFact {
  id: string;
  attempt: number;
  status: HookRunStatus;
  requestedAt: Date;
  startedAt: Date | null;
  reason: string | null;
  /**
   * An operator-side run marked running whose runner is not in the leader's process (the
   * previous leader died mid-hook): it never finished, so it is run again (at least once).
   */
  orphaned?: boolean;
}

/** What the hook's process or webhook is told: DRYDOCK_* (always) plus the hook's own env. */
export interface HookContext {
  rolloutId: string;
  /** Hostname ('' for preRollout/postRollout). */
  node: string;
  nodeId: string | null;
  component: string;
  fromVersion: string | null;
  toVersion: string | null;
}

/** Ask for a run (a new one, or again after an orphaned one), or give up on one that never reported. */
export type HookAction =
  | { kind: 'start'; id: string; rolloutId: string; nodeId: string | null; point: HookPoint; index: number; attempt: number; hook: HookSpec; env: Record<string, string> }
  | { kind: 'expire'; id: string; nodeId: string | null; reason: string };

/**
 * Deterministic ids: a retried decision names the same run, so the journal recognises it. A
 * rollback pass over a node runs its node hooks again under ids of their own.
 */
export function nodeHookId(taskId: string, direction: 'forward' | 'rollback', point: HookPoint, index: number): string {
  return direction === 'forward' ? `${taskId}/${point}/${index}` : `${taskId}/rollback/${point}/${index}`;
}
export function rolloutHookId(rolloutId: string, point: HookPoint, index: number): string {
  return `${rolloutId}/-/${point}/${index}`;
}

export function hookEnv(context: HookContext, point: HookPoint, hook: HookSpec, id: string): Record<string, string> {
  return {
    ...hook.env,
    DRYDOCK_HOOK_ID: id,
    DRYDOCK_ROLLOUT_ID: context.rolloutId,
    DRYDOCK_NODE: context.node,
    DRYDOCK_NODE_ID: context.nodeId ?? '',
    DRYDOCK_COMPONENT: context.component,
    DRYDOCK_FROM_VERSION: context.fromVersion ?? '',
    DRYDOCK_TO_VERSION: context.toVersion ?? '',
    DRYDOCK_PHASE: point,
  };
}

export function describeHook(hook: HookSpec): string {
  return 'run' in hook ? hook.run.join(' ') : `POST ${hook.webhook}`;
}

/** Where a point stands: run this hook now, wait for the one running, failed, or passed. */
export type HookProgress =
  | { kind: 'act'; actions: HookAction[] }
  | { kind: 'wait'; untilMs: number }
  | { kind: 'failed'; reason: string; actions: HookAction[] }
  | { kind: 'passed' };

/**
 * The hooks of one point, in order, one at a time: the first without a finished run is asked for
 * (or waited for); a failed run stops the point unless its hook says continueOnError. A run that
 * neither finished nor reported within its timeout plus HOOK_REPORT_GRACE_MS counts as failed
 * (and is expired, so no agent starts it late).
 */
export function hookProgress(
  hooks: readonly HookSpec[],
  point: HookPoint,
  idOf: (index: number) => string,
  runs: (id: string) => HookRunFact | undefined,
  context: HookContext,
  now: Date,
): HookProgress {
  // Runs given up on in this decision (continueOnError ones included): closed with its outcome.
  const expired: HookAction[] = [];
  for (const [index, hook] of hooks.entries()) {
    const id = idOf(index);
    const run = runs(id);
    const start = (attempt: number): HookAction => ({ kind: 'start', id, rolloutId: context.rolloutId, nodeId: context.nodeId, point, index, attempt, hook, env: hookEnv(context, point, hook, id) });
    if (!run) return { kind: 'act', actions: [...expired, start(1)] };
    let failure: string | null = null;
    if (run.status === 'requested' || run.status === 'running') {
      if (run.orphaned) return { kind: 'act', actions: [...expired, start(run.attempt + 1)] };
      const deadline = (run.startedAt ?? run.requestedAt).getTime() + hook.timeout + HOOK_REPORT_GRACE_MS;
      if (now.getTime() <= deadline) return expired.length > 0 ? { kind: 'act', actions: expired } : { kind: 'wait', untilMs: deadline - now.getTime() };
      failure = `no result within ${hook.timeout / 1000} s (+${HOOK_REPORT_GRACE_MS / 1000} s grace)`;
      expired.push({ kind: 'expire', id, nodeId: context.nodeId, reason: failure });
    } else if (run.status === 'failed') failure = run.reason ?? 'failed';
    if (failure !== null && !hook.continueOnError) {
      return { kind: 'failed', reason: `${point} hook ${index} (${describeHook(hook)}) failed: ${failure}`, actions: expired };
    }
  }
  return expired.length > 0 ? { kind: 'act', actions: expired } : { kind: 'passed' };
}
