import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { action, clientFor } from '../context.js';
import { printJson, printRows } from '../output.js';
import { DEFAULT_RECONNECT_TIMEOUT, reconnectorFor } from '../reconnect.js';

interface EventRow {
  id: number;
  at: string;
  kind: string;
  actor: string;
  node_id: string | null;
  rollout_id: string | null;
  data: Record<string, unknown>;
}

const line = (e: EventRow) => `${e.at} #${e.id} ${e.kind} by ${e.actor}${e.node_id ? ` node=${e.node_id.slice(0, 8)}` : ''} ${JSON.stringify(e.data)}`;

/** Events, drift and the compatibility matrix: verification and audit (DESIGN.md §1.7). */
export function registerAuditCommands(program: Command): void {
  program
    .command('events')
    .description('the event log; --follow streams new events as they happen')
    .option('--kind <prefix>', 'only kinds starting with this, e.g. rollout.')
    .option('--rollout <id>', 'only this rollout')
    .option('--after <id>', 'only events after this id', '0')
    .option('--follow', 'keep streaming (Server-Sent Events) until Ctrl-C; survives an operator restart, resuming after the last event printed')
    .option('--reconnect-timeout <duration>', 'with --follow: while the operator is unreachable keep retrying this long, then exit 1; 0: exit at once', DEFAULT_RECONNECT_TIMEOUT)
    .option('--json', 'one JSON object per line')
    .action(
      action(async (opts, command: Command) => {
        const client = clientFor(command);
        const params = new URLSearchParams({ after: opts.after });
        if (opts.kind) params.set('kind_prefix', opts.kind);
        if (opts.rollout) params.set('rollout_id', opts.rollout);
        const print = (e: EventRow) => process.stdout.write(`${opts.json ? JSON.stringify(e) : line(e)}\n`);
        if (!opts.follow) {
          for (const e of await client.get<EventRow[]>(`/api/v1/events?${params}`)) print(e);
          return;
        }
        // Each event once, in order, across reconnections: the stream resumes after the last one printed.
        const reconnect = reconnectorFor(opts.reconnectTimeout);
        for await (const e of client.stream<EventRow>(`/api/v1/events/stream?${params}`, undefined, reconnect)) print(e);
      }),
    );

  program
    .command('drift')
    .description('nodes not on the version the last completed rollout of their component set')
    .option('--component <name>', 'only this component')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const report = await clientFor(command).get<{ drift: boolean; expected: Record<string, string>; nodes: { hostname: string; component: string; expected: string; actual: string | null }[] }>(
          `/api/v1/drift${opts.component ? `?component=${encodeURIComponent(opts.component)}` : ''}`,
        );
        if (opts.json) return printJson(report);
        process.stdout.write(`drift: ${report.drift}  (expected: ${Object.entries(report.expected).map(([c, v]) => `${c} ${v}`).join(', ') || 'no completed rollout yet'})\n`);
        if (report.nodes.length > 0) printRows(report.nodes, [['HOSTNAME', (n) => n.hostname], ['COMPONENT', (n) => n.component], ['EXPECTED', (n) => n.expected], ['ACTUAL', (n) => n.actual]], false, '');
        if (report.drift) process.exitCode = 1;
      }),
    );

  const compat = program.command('compat').description('the version compatibility matrix preflight enforces');
  compat
    .command('set')
    .description('replace the matrix from a file: rules: [{component, range, requires_component, requires_range}]')
    .requiredOption('-f, --file <file>', 'YAML or JSON')
    .action(
      action(async (opts, command: Command) => {
        const body = parseYaml(readFileSync(opts.file, 'utf8'));
        const reply = await clientFor(command).request<{ rules: unknown[] }>('PUT', '/api/v1/compat', body);
        process.stdout.write(`compatibility matrix: ${reply.rules.length} rule(s)\n`);
      }),
    );
  compat
    .command('show')
    .description('print the matrix')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const reply = await clientFor(command).get<{ rules: { component: string; range: string; requires_component: string; requires_range: string }[] }>('/api/v1/compat');
        printRows(reply.rules, [['COMPONENT', (r) => `${r.component} ${r.range}`], ['REQUIRES', (r) => `${r.requires_component} ${r.requires_range}`]], opts.json, 'no rules');
      }),
    );
}
