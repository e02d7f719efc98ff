import type { Command } from 'commander';
import { action, clientFor } from '../context.js';
import type { QuarantineView } from '../../store/quarantine.js';
import { printRows } from '../output.js';

/** Versions the circuit breaker rolled back (quarantined until an approver clears them). */
export function registerQuarantineCommands(program: Command): void {
  const quarantine = program.command('quarantine').description('versions the circuit breaker rolled back: no rollout to them until an approver clears them');
  quarantine
    .command('list')
    .description('open quarantines first, then cleared ones (kept for audit)')
    .option('--open', 'only open quarantines')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { open?: boolean; json?: boolean }, command: Command) => {
        const rows = await clientFor(command).get<QuarantineView[]>(`/api/v1/quarantine${opts.open ? '?open=true' : ''}`);
        printRows(
          rows,
          [
            ['COMPONENT', (q) => q.component],
            ['VERSION', (q) => q.version],
            ['STATE', (q) => (q.cleared_at ? `cleared by ${q.cleared_by}` : 'quarantined')],
            ['ROLLOUT', (q) => q.rollout_id ?? ''],
            ['SINCE', (q) => q.quarantined_at],
            ['REASON', (q) => q.clear_reason ?? q.reason],
          ],
          opts.json,
          'nothing quarantined',
        );
      }),
    );
  quarantine
    .command('clear <component> <version>')
    .description('allow rollouts to this version again (role approver; recorded with your reason)')
    .requiredOption('--reason <text>', 'why it is safe again (kept in the audit trail)')
    .action(
      action(async (component: string, version: string, opts: { reason: string }, command: Command) => {
        const row = await clientFor(command).post<QuarantineView>(
          `/api/v1/quarantine/${encodeURIComponent(component)}/${encodeURIComponent(version)}/clear`,
          { reason: opts.reason },
        );
        process.stdout.write(`${row.component} ${row.version} cleared by ${row.cleared_by}: ${row.clear_reason}\n`);
      }),
    );
}
