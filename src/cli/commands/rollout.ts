import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { ApiClient } from '../../api-client.js';
import { action, clientFor } from '../context.js';
import { formatDuration } from '../../domain/duration.js';
import { formatAge, printJson, printRows } from '../output.js';
import { DEFAULT_RECONNECT_TIMEOUT, type Reconnector, reconnectorFor } from '../reconnect.js';
import { watchRollout } from '../rollout-watch.js';

const enc = encodeURIComponent;

interface Check {
  id: string;
  status: string;
  message: string;
  overridden?: boolean;
}
interface PlanReply {
  spec: { name: string; target: { component: string; version: string }; targets?: { component: string; version: string }[] };
  plan: {
    drain_mode: string;
    batches: { index: number; canary: boolean; nodes: { id: string; hostname: string; region: string }[] }[];
    skipped: { hostname: string }[];
    moves: { instance_id: string; deployment: string; from_hostname: string; to_hostname: string | null; batch: number }[];
    estimated_duration_s: number;
  };
  preflight: { blocked: boolean; checks: Check[] };
}
interface RolloutSummary {
  id: string;
  name: string;
  status: string;
  component: string;
  version: string;
  current_batch: number;
  batch_count: number;
  created_by: string;
  created_at: string;
  duration_s: number;
  counters?: { total: number; done: number; failed: number; in_flight: number };
}

function readSpec(file: string): unknown {
  try {
    return parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
}

/**
 * What a tripped breaker asks (the continuation approval's options, as `GET /api/v1/approvals`
 * and `rollout show` list them), and the short names people type. The CLI sends the API's name,
 * so the approval records one of its own options whichever spelling was used.
 */
const DECISIONS: Record<string, string> = {
  continue_anyway: 'continue_anyway',
  rollback_completed_batches: 'rollback_completed_batches',
  abort: 'abort',
  continue: 'continue_anyway',
  rollback: 'rollback_completed_batches',
};
const DECISION_LIST = 'continue_anyway (or continue), rollback_completed_batches (or rollback), abort';
const RECONNECT_HELP = `while the operator is unreachable (a restart), keep retrying this long, then exit 1; 0: exit at once`;

const overrideQuery = (overrides: string[] | undefined) => (overrides?.length ? `?${overrides.map((o) => `override=${enc(o)}`).join('&')}` : '');
const collect = (value: string, previous: string[] = []) => [...previous, value];

function printPlan(reply: PlanReply): void {
  const { spec, plan, preflight } = reply;
  const targets = (spec.targets ?? [spec.target]).map((t) => `${t.component} → ${t.version}`).join(', then ');
  const out: string[] = [`rollout ${spec.name}: ${targets}, drain ${plan.drain_mode}, ~${Math.round(plan.estimated_duration_s / 60)} min`, ''];
  for (const b of plan.batches) out.push(`batch ${b.index}${b.canary ? ' (canary)' : ''}: ${b.nodes.map((n) => `${n.hostname} [${n.region}]`).join(', ')}`);
  if (plan.skipped.length > 0) out.push(`skipped (already on ${(spec.targets ?? [spec.target]).map((t) => t.version).join(', ')}): ${plan.skipped.map((n) => n.hostname).join(', ')}`);
  if (plan.moves.length > 0) {
    out.push('', `instances that move (${plan.moves.length}):`);
    for (const m of plan.moves) out.push(`  batch ${m.batch}: ${m.deployment} ${m.instance_id.slice(0, 8)} ${m.from_hostname} → ${m.to_hostname ?? 'NOWHERE'}`);
  }
  out.push('', 'preflight:');
  for (const c of preflight.checks) out.push(`  ${c.status.toUpperCase().padEnd(4)} ${c.id.padEnd(20)} ${c.message}${c.overridden ? ' (overridden)' : ''}`);
  out.push('', preflight.blocked ? 'BLOCKED: fix the failed checks or --override them by name' : 'ready to create');
  process.stdout.write(`${out.join('\n')}\n`);
}

async function show(client: ApiClient, id: string, json: boolean | undefined): Promise<void> {
  const r = await client.get<RolloutSummary & { batches: { index: number; canary: boolean; nodes: { hostname: string; state: string; last_error: string | null }[] }[]; approvals: { kind: string; status: string; options: string[] }[] }>(
    `/api/v1/rollouts/${enc(id)}`,
  );
  if (json) return printJson(r);
  const out = [`${r.name} (${r.id}): ${r.status} — ${r.component} → ${r.version}, batch ${r.current_batch + 1}/${r.batch_count}`];
  for (const b of r.batches) out.push(`  batch ${b.index}${b.canary ? ' (canary)' : ''}: ${b.nodes.map((n) => `${n.hostname}=${n.state}${n.last_error ? ` (${n.last_error})` : ''}`).join(', ')}`);
  for (const a of r.approvals.filter((x) => x.status === 'pending')) out.push(`  waiting for ${a.kind} approval: ${a.options.join(' | ')}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

export function registerRolloutCommands(program: Command): void {
  const rollout = program.command('rollout').description('plan, create and steer rollouts');

  rollout
    .command('plan')
    .description('dry run: batches, instance moves, duration and the preflight report')
    .requiredOption('-f, --file <file>', 'rollout spec (YAML or JSON)')
    .option('--override <check>', 'treat a failed preflight check as accepted (repeatable)', collect)
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const reply = await clientFor(command).post<PlanReply>(`/api/v1/rollouts/plan${overrideQuery(opts.override)}`, readSpec(opts.file));
        if (opts.json) return printJson(reply);
        printPlan(reply);
        if (reply.preflight.blocked) process.exitCode = 2;
      }),
    );

  rollout
    .command('create')
    .description('create a rollout (preflight must pass or be overridden)')
    .requiredOption('-f, --file <file>', 'rollout spec (YAML or JSON)')
    .option('--override <check>', 'override a failed preflight check by name (repeatable; recorded in events)', collect)
    .option('--watch', 'follow it until it ends; exit 0 only when it completed')
    .option('--reconnect-timeout <duration>', `with --watch: ${RECONNECT_HELP}`, DEFAULT_RECONNECT_TIMEOUT)
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const client = clientFor(command);
        const reconnect = reconnectorFor(opts.reconnectTimeout, { connected: true });
        const created = await client.post<RolloutSummary>(`/api/v1/rollouts${overrideQuery(opts.override)}`, readSpec(opts.file));
        if (opts.json && !opts.watch) return printJson(created);
        process.stdout.write(`created rollout ${created.name} (${created.id}): ${created.status}\n`);
        if (opts.watch) await finishWatch(client, created.id, opts.json, reconnect);
      }),
    );

  rollout
    .command('list')
    .description('rollouts, newest first')
    .option('--status <status>', 'only this status')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const rows = await clientFor(command).get<RolloutSummary[]>(`/api/v1/rollouts${opts.status ? `?status=${enc(opts.status)}` : ''}`);
        printRows(
          rows,
          [
            ['NAME', (r) => r.name],
            ['STATUS', (r) => r.status],
            ['TARGET', (r) => `${r.component} ${r.version}`],
            ['BATCH', (r) => `${Math.max(0, r.current_batch + 1)}/${r.batch_count}`],
            ['BY', (r) => r.created_by],
            ['AGE', (r) => formatAge(r.created_at)],
            ['DURATION', (r) => formatDuration(r.duration_s * 1000), 'wide'],
            ['ID', (r) => r.id],
          ],
          opts.json,
          'no rollouts',
        );
      }),
    );

  rollout
    .command('show <id>')
    .description('one rollout: batches, node states, pending approvals')
    .option('--json', 'machine-readable output')
    .action(action(async (id: string, opts, command: Command) => show(clientFor(command), id, opts.json)));

  rollout
    .command('approve <id>')
    .description('approve the plan (role approver); --set edits re-plan and re-run preflight first')
    .option('--set <path=value>', 'edit the spec, e.g. strategy.batch.percent=10 (repeatable)', collect)
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts, command: Command) => {
        const reply = await clientFor(command).post<RolloutSummary>(`/api/v1/rollouts/${enc(id)}/approve`, { set: opts.set ?? [] });
        if (opts.json) return printJson(reply);
        process.stdout.write(`approved ${reply.name}: ${reply.status}\n`);
      }),
    );

  rollout
    .command('reject <id>')
    .description('reject the plan (role approver)')
    .requiredOption('--reason <text>', 'why, for the record')
    .action(
      action(async (id: string, opts, command: Command) => {
        const reply = await clientFor(command).post<RolloutSummary>(`/api/v1/rollouts/${enc(id)}/reject`, { reason: opts.reason });
        process.stdout.write(`rejected ${reply.name}\n`);
      }),
    );

  for (const [verb, description] of [
    ['pause', 'start no new node; nodes in flight finish'],
    ['resume', 'continue a paused rollout'],
    ['abort', 'finish nodes in flight safely and start nothing new'],
    ['rollback', 'return every completed node to its previous version, newest batch first'],
  ] as const) {
    const command = rollout
      .command(`${verb} <id>`)
      .description(description)
      .option('--json', 'machine-readable output');
    // "Roll back one region": only that region's completed nodes return, with the same drain and health rules.
    if (verb === 'rollback') command.option('--region <region>', "return only this region's completed nodes (repeatable)", (v: string, prev: string[] = []) => [...prev, v]);
    command.action(
        action(async (id: string, opts, command: Command) => {
          const body = opts.region ? { region: opts.region as string[] } : {};
          const reply = await clientFor(command).post<RolloutSummary>(`/api/v1/rollouts/${enc(id)}/${verb}`, body);
          if (opts.json) return printJson(reply);
          process.stdout.write(`${reply.name}: ${reply.status}\n`);
        }),
      );
  }

  rollout
    .command('decide <id> <decision>')
    .description(`answer a tripped circuit breaker (role approver); decision: ${DECISION_LIST}`)
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, decision: string, opts, command: Command) => {
        const chosen = Object.hasOwn(DECISIONS, decision) ? DECISIONS[decision] : undefined;
        if (!chosen) throw new Error(`unknown decision "${decision}": use one of ${DECISION_LIST}`);
        const reply = await clientFor(command).post<RolloutSummary>(`/api/v1/rollouts/${enc(id)}/decide`, { decision: chosen });
        if (opts.json) return printJson(reply);
        process.stdout.write(`${reply.name}: ${reply.status}\n`);
      }),
    );

  rollout
    .command('watch <id>')
    .description('live progress until the rollout ends; exit 0 only when it completed, 1 otherwise (also when it stops for a decision)')
    .option('--reconnect-timeout <duration>', RECONNECT_HELP, DEFAULT_RECONNECT_TIMEOUT)
    .option('--json', 'print the final rollout as JSON')
    .action(action(async (id: string, opts, command: Command) => finishWatch(clientFor(command), id, opts.json, reconnectorFor(opts.reconnectTimeout))));
}

async function finishWatch(client: ApiClient, id: string, json: boolean | undefined, reconnect: Reconnector): Promise<void> {
  const status = await watchRollout(client, id, { tty: process.stdout.isTTY === true, json, reconnect });
  if (json) printJson(await reconnect.call(() => client.get(`/api/v1/rollouts/${enc(id)}`)));
  else if (status === 'awaiting_decision') process.stdout.write(`rollout awaiting a decision: drydock rollout decide ${id} continue_anyway|rollback_completed_batches|abort\n`);
  else process.stdout.write(`rollout ${status}\n`);
  if (status !== 'completed') process.exitCode = 1;
}
