import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { DeliveryView, WebhookView } from '../../store/webhooks.js';
import { action, clientFor, parseIntOption } from '../context.js';
import { printJson, printRows } from '../output.js';

const enc = encodeURIComponent;

/** The secret is read from a file (never a flag: flags land in shell history and `ps`). */
function readSecret(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read --secret-file ${file}: ${(error as Error).message}`);
  }
  return text.trim();
}

/** `drydock webhooks …`: subscriptions and their deliveries (README: Notifications). */
export function registerWebhookCommands(program: Command): void {
  const webhooks = program.command('webhooks').description('notify URLs of events (signed, retried from a durable outbox)');

  webhooks
    .command('add <url>')
    .description('subscribe a URL to event kinds (role admin)')
    .requiredOption('--events <prefixes>', 'comma-separated event kinds or prefixes, e.g. rollout.,node.down')
    .requiredOption('--secret-file <file>', 'file holding the HMAC-SHA256 signing secret (at least 16 characters)')
    .option('--format <format>', 'drydock (the event as JSON) or slack (an incoming-webhook message)', 'drydock')
    .option('--json', 'machine-readable output')
    .action(
      action(async (url: string, opts: { events: string; secretFile: string; format: string; json?: boolean }, command: Command) => {
        const events = opts.events.split(',').map((e) => e.trim()).filter(Boolean);
        const created = await clientFor(command).post<WebhookView>('/api/v1/webhooks', { url, events, format: opts.format, secret: readSecret(opts.secretFile) });
        if (opts.json) return printJson(created);
        process.stdout.write(`webhook ${created.id} added: ${created.url} gets ${created.events.join(', ')} (${created.format})\n`);
      }),
    );

  webhooks
    .command('list')
    .description('every subscription with its delivery counts')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { json?: boolean }, command: Command) => {
        const rows = await clientFor(command).get<WebhookView[]>('/api/v1/webhooks');
        printRows(
          rows,
          [
            ['ID', (w) => w.id],
            ['URL', (w) => w.url],
            ['EVENTS', (w) => w.events.join(',')],
            ['FORMAT', (w) => w.format],
            ['PENDING', (w) => w.pending],
            ['DELIVERED', (w) => w.delivered],
            ['FAILED', (w) => w.failed],
          ],
          opts.json,
          'no webhooks',
        );
      }),
    );

  webhooks
    .command('remove <id>')
    .description('remove a subscription and its deliveries (role admin)')
    .action(
      action(async (id: string, _opts: unknown, command: Command) => {
        await clientFor(command).request('DELETE', `/api/v1/webhooks/${enc(id)}`);
        process.stdout.write(`webhook ${id} removed\n`);
      }),
    );

  webhooks
    .command('deliveries')
    .description('deliveries, newest first: state, attempts, last answer, next attempt')
    .option('--webhook <id>', 'only this subscription')
    .option('--state <state>', 'pending, delivered or failed')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { webhook?: string; state?: string; limit: string; json?: boolean }, command: Command) => {
        const query = new URLSearchParams({ limit: String(parseIntOption(opts.limit, '--limit')) });
        if (opts.webhook) query.set('webhook', opts.webhook);
        if (opts.state) query.set('state', opts.state);
        const rows = await clientFor(command).get<DeliveryView[]>(`/api/v1/webhooks/deliveries?${query}`);
        printRows(
          rows,
          [
            ['ID', (d) => d.id],
            ['WEBHOOK', (d) => d.webhook_id],
            ['EVENT', (d) => `${d.event_id} ${d.event_kind}`],
            ['STATE', (d) => d.state],
            ['ATTEMPTS', (d) => d.attempts],
            ['LAST', (d) => d.last_status ?? d.last_error],
            ['NEXT ATTEMPT', (d) => d.next_attempt_at],
          ],
          opts.json,
          'no deliveries',
        );
      }),
    );
}
