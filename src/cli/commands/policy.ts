import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { action, clientFor } from '../context.js';
import { printJson, printRows } from '../output.js';

interface PolicyView {
  name: string;
  policy: {
    description?: string;
    match: { component?: string; selector?: { role?: string; regions?: string[]; labels?: Record<string, string> } };
    approval?: { required: boolean; distinctApprover: boolean };
    windows?: { days: string[]; start: string; end: string; timezone: string }[];
  };
  updated_by: string;
  updated_at: string;
}

const matchText = (p: PolicyView['policy']) => {
  const s = p.match.selector;
  const parts = [
    p.match.component ? `component=${p.match.component}` : '',
    s?.role ? `role=${s.role}` : '',
    s?.regions ? `regions=${s.regions.join(',')}` : '',
    ...Object.entries(s?.labels ?? {}).map(([k, v]) => `${k}=${v}`),
  ];
  return parts.filter(Boolean).join(' ');
};
const requiresText = (p: PolicyView['policy']) =>
  [
    p.approval?.required || p.approval?.distinctApprover ? 'approval' : '',
    p.approval?.distinctApprover ? 'distinct approver' : '',
    ...(p.windows ?? []).map((w) => `window ${w.days.join(',')} ${w.start}-${w.end} ${w.timezone}`),
  ]
    .filter(Boolean)
    .join('; ');

/** Operator-side policies (admin sets them; every rollout they cover obeys them). */
export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('operator-side rollout policies the spec cannot weaken');
  policy
    .command('set')
    .description('create or replace a policy from a file (role admin); the file is validated strictly')
    .requiredOption('-f, --file <file>', 'one policy (YAML or JSON)')
    .action(
      action(async (opts, command: Command) => {
        let body: unknown;
        try {
          body = parseYaml(readFileSync(opts.file, 'utf8'));
        } catch (error) {
          throw new Error(`cannot read ${opts.file}: ${(error as Error).message}`);
        }
        const stored = await clientFor(command).request<PolicyView>('PUT', '/api/v1/policies', body);
        process.stdout.write(`policy ${stored.name} set: ${matchText(stored.policy)} requires ${requiresText(stored.policy)}\n`);
      }),
    );
  const print = (rows: PolicyView[], json: boolean | undefined, single: boolean) => {
    if (json) return printJson(single ? rows[0] : rows);
    printRows(rows, [['NAME', (p) => p.name], ['MATCH', (p) => matchText(p.policy)], ['REQUIRES', (p) => requiresText(p.policy)], ['UPDATED BY', (p) => p.updated_by]], false, 'no policies');
  };
  policy
    .command('list')
    .description('every policy')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { json?: boolean }, command: Command) => {
        print(await clientFor(command).get<PolicyView[]>('/api/v1/policies'), opts.json, false);
      }),
    );
  policy
    .command('show [name]')
    .description('one policy in full (or every policy)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (name: string | undefined, opts: { json?: boolean }, command: Command) => {
        const client = clientFor(command);
        if (!name) return print(await client.get<PolicyView[]>('/api/v1/policies'), opts.json, false);
        print([await client.get<PolicyView>(`/api/v1/policies/${encodeURIComponent(name)}`)], opts.json, true);
      }),
    );
}
