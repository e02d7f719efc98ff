import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { ApiClient } from '../../api-client.js';
import type { DeploymentView } from '../../store/deployments.js';
import type { InstanceView } from '../../store/instances.js';
import type { MigrationView } from '../../store/instance-migrations.js';
import type { ReplicaView } from '../../store/operator-replicas.js';
import type { NodeView } from '../../store/nodes.js';
import { action, clientFor } from '../context.js';
import { type Column, printJson, printRows } from '../output.js';

const enc = encodeURIComponent;

/** PUT /api/v1/deployments/:name answers how the apply went, like kubectl apply prints it. */
interface AppliedDeployment {
  result: 'created' | 'configured' | 'unchanged';
  changed: string[];
  deployment: DeploymentView;
}

const nodeColumns: Column<NodeView>[] = [
  ['HOSTNAME', (n) => n.hostname],
  ['REGION', (n) => n.region],
  ['ROLE', (n) => n.role],
  ['STATUS', (n) => n.status],
  ['INSTANCES', (n) => `${n.active_instances}/${n.max_instances}`],
  ['AGENT', (n) => n.agent_version],
  ['DRAIN', (n) => (n.drain ? n.drain.state : '-')],
  ['ID', (n) => n.id],
  ['COMPONENTS', (n) => componentVersions(n.components), 'wide'],
  ['CAPACITY', (n) => n.available_capacity, 'wide'],
];

/** `node-agent@1.2.0,web@2.0.0`: each component as it is addressed (component@version). */
function componentVersions(components: Record<string, string> | undefined): string {
  const entries = Object.entries(components ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '-' : entries.map(([name, version]) => `${name}@${version}`).join(',');
}

/**
 * The A/B SLOTS block of `node show`:
 *   A/B SLOTS
 *   a  1.0.0  active
 *   b  2.0.0  next (2 tries left)
 */
export function slotLines(slots: NonNullable<NodeView['slots']>): string[] {
  const line = (name: 'a' | 'b') => {
    const marks = [slots.active === name ? 'active' : '', slots.next === name && slots.next !== slots.active ? `next${slots.tries_left > 0 ? ` (${slots.tries_left} tries left)` : ''}` : '']
      .filter(Boolean)
      .join(', ');
    return `${name}  ${slots[name].version ?? '(original image)'}${marks ? `  ${marks}` : ''}`;
  };
  return ['A/B SLOTS', line('a'), line('b')];
}

/** Follows a drain until it completes (0), or fails / is blocked / runs out of time (non-zero). */
async function waitForDrain(client: ApiClient, nodeId: string, json: boolean): Promise<void> {
  let last = '';
  for (;;) {
    const node = await client.get<NodeView>(`/api/v1/nodes/${enc(nodeId)}`);
    const state = node.drain?.state ?? 'none';
    const line = `${node.hostname}: drain ${state}, ${node.active_instances} instance(s) left — ${node.drain?.message ?? ''}`;
    if (line !== last && !json) process.stdout.write(`${line}\n`);
    last = line;
    if (state === 'completed') {
      if (json) printJson(node);
      return;
    }
    if (state === 'failed' || state === 'blocked' || state === 'none') {
      if (json) printJson(node);
      throw new Error(`drain of ${node.hostname} ${state === 'none' ? 'was cancelled' : state}: ${node.drain?.message ?? ''}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function registerFleetCommands(program: Command): void {
  program
    .command('nodes')
    .description('list nodes with status, load and agent version')
    .option('--region <region>', 'only this region')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const query = opts.region ? `?region=${enc(opts.region)}` : '';
        printRows(await clientFor(command).get<NodeView[]>(`/api/v1/nodes${query}`), nodeColumns, opts.json, 'no nodes registered');
      }),
    );

  const node = program.command('node').description('act on one node (NODE is a hostname or an id)');
  node
    .command('show <node>')
    .description('show one node')
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts, command: Command) => {
        const view = await clientFor(command).get<NodeView>(`/api/v1/nodes/${enc(id)}`);
        if (opts.json) return printJson(view);
        printRows([view], nodeColumns, false, '');
        process.stdout.write(`\ncomponents: ${componentVersions(view.components).replaceAll(',', ' ')}\n`);
        if (view.drain) process.stdout.write(`\ndrain: ${view.drain.state} — ${view.drain.message} (deadline ${view.drain.deadline})\n`);
        if (view.slots) process.stdout.write(`\n${slotLines(view.slots).join('\n')}\n`);
      }),
    );
  node
    .command('drain <node>')
    .description('cordon the node and migrate every instance off it, make-before-break')
    .option('--force', 'stop pinned instances until the node is enabled')
    .option('--timeout <duration>', "bound on the drain, e.g. 10m (default: the operator's --drain-timeout)")
    .option('--wait', 'follow the drain until it completes; non-zero exit when it fails or is blocked')
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts, command: Command) => {
        const client = clientFor(command);
        // No --timeout: send none, so the operator's --drain-timeout applies.
        const body: { force: boolean; timeout?: string } = { force: opts.force ?? false };
        if (opts.timeout !== undefined) body.timeout = opts.timeout;
        const view = await client.post<NodeView>(`/api/v1/nodes/${enc(id)}/drain`, body);
        if (opts.wait) return waitForDrain(client, view.id, opts.json);
        if (opts.json) return printJson(view);
        process.stdout.write(`draining ${view.hostname}: ${view.active_instances} instance(s) to move (follow with --wait or \`drydock node show ${view.hostname}\`)\n`);
      }),
    );
  node
    .command('re-enroll <node>')
    .description("admin: void the node's credential; the next agent to register its hostname enrolls it again (a lost agent-state.json)")
    .option('--reason <text>', 'why, for the event log')
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts, command: Command) => {
        const view = await clientFor(command).post<NodeView>(`/api/v1/nodes/${enc(id)}/re-enroll`, opts.reason ? { reason: opts.reason } : {});
        if (opts.json) return printJson(view);
        process.stdout.write(`${view.hostname}: re-enrolled; its credential is void until its agent registers again\n`);
      }),
    );
  for (const [verb, description] of [
    ['enable', 'uncordon: end the drain, accept instances again, restart parked pinned instances'],
    ['uncordon', 'same as enable'],
    ['cordon', 'stop placing new instances on the node'],
  ] as const) {
    node
      .command(`${verb} <node>`)
      .description(description)
      .option('--json', 'machine-readable output')
      .action(
        action(async (id: string, opts, command: Command) => {
          const view = await clientFor(command).post<NodeView>(`/api/v1/nodes/${enc(id)}/${verb}`);
          if (opts.json) return printJson(view);
          process.stdout.write(`${view.hostname}: ${view.status}\n`);
        }),
      );
  }

  program
    .command('instances')
    .description('list instances')
    .option('--node <node>', 'only instances on this node (hostname or id)')
    .option('--deployment <deployment>', 'only instances of this deployment (name or id)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const params = new URLSearchParams();
        if (opts.node) params.set('node', opts.node);
        if (opts.deployment) params.set('deployment', opts.deployment);
        const rows = await clientFor(command).get<InstanceView[]>(`/api/v1/instances${params.size ? `?${params}` : ''}`);
        printRows(
          rows,
          [
            ['ID', (i) => i.id],
            ['DEPLOYMENT', (i) => i.deployment],
            ['NODE', (i) => i.hostname],
            ['STATUS', (i) => i.status],
            ['HEALTHY', (i) => (i.healthy ? 'yes' : 'no')],
            ['ENDPOINT', (i) => (i.published ? i.url : '-')],
            ['PID', (i) => i.pid],
          ],
          opts.json,
          'no instances',
        );
      }),
    );

  const instance = program.command('instance').description('act on one instance');
  instance
    .command('migrate <id>')
    .description('move one instance to another node: a VM live (its guest keeps running), anything else make-before-break')
    .option('--to <node>', 'target node (hostname or id); default: best node with room')
    .option('--force', 'move a pinned instance anyway')
    .option('--mode <mode>', 'live (vm workloads only) or restart; default: live for a VM, restart otherwise')
    .option('--downtime-limit <ms>', 'longest pause a live move may cause, in ms (default 300)')
    .option('--deadline <duration>', 'a live move not done by then fails and the VM stays (default 10m)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts, command: Command) => {
        const body: Record<string, unknown> = { force: opts.force ?? false };
        if (opts.to) body.target_node = opts.to;
        if (opts.mode) body.mode = opts.mode;
        if (opts.downtimeLimit !== undefined) body.downtime_limit_ms = Number(opts.downtimeLimit);
        if (opts.deadline !== undefined) body.deadline = opts.deadline;
        const result = await clientFor(command).post<{ replacement_id: string; to_hostname: string; migration_id: string; mode: string }>(
          `/api/v1/instances/${enc(id)}/migrate`,
          body,
        );
        if (opts.json) return printJson(result);
        process.stdout.write(`migrating ${id} to ${result.to_hostname} (${result.mode}; migration ${result.migration_id}, new instance ${result.replacement_id})\n`);
      }),
    );

  program
    .command('operators')
    .description('operator replicas (the control plane as a fleet): region, version, ready, leader, last seen')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const rows = await clientFor(command).get<(ReplicaView & { serving?: boolean })[]>('/api/v1/operators');
        printRows(
          rows,
          [
            ['HOSTNAME', (r) => r.hostname],
            ['REGION', (r) => r.region],
            ['VERSION', (r) => r.version],
            ['READY', (r) => (r.ready ? 'yes' : 'no')],
            ['LEADER', (r) => (r.leader ? 'yes' : '')],
            ['SERVING', (r) => (r.serving === false ? 'no' : 'yes')],
            ['SCHEMA', (r) => `${r.knows_schema_version}/${r.database_schema_version}`],
            ['SEEN', (r) => (r.live ? `${Math.round(r.seen_ago_ms / 1000)} s ago` : r.reason)],
            ['URL', (r) => r.url],
            ['ID', (r) => r.id],
          ],
          opts.json,
          'no operator replicas',
        );
      }),
    );

  program
    .command('migrations')
    .description('moves of instances between nodes, newest first: state, and for live moves total time, downtime and bytes')
    .option('--state <state>', 'open, or one of preparing, target_ready, transferring, switching, completed, failed, cancelled')
    .option('--instance <id>', 'moves of this instance')
    .option('--node <id>', 'moves from or to this node id')
    .option('--limit <n>', 'at most this many (default 100)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const params = new URLSearchParams();
        if (opts.state) params.set('state', opts.state);
        if (opts.instance) params.set('instance', opts.instance);
        if (opts.node) params.set('node', opts.node);
        if (opts.limit) params.set('limit', opts.limit);
        const rows = await clientFor(command).get<MigrationView[]>(`/api/v1/migrations${params.size ? `?${params}` : ''}`);
        const ms = (v: number | null) => (v === null ? '-' : `${Math.round(v)} ms`);
        printRows(
          rows,
          [
            ['ID', (m) => m.id],
            ['DEPLOYMENT', (m) => m.deployment ?? m.deployment_id],
            ['FROM', (m) => m.source_hostname ?? m.source_node_id],
            ['TO', (m) => m.target_hostname ?? m.target_node_id],
            ['MODE', (m) => m.mode],
            ['STATE', (m) => m.state],
            ['TOTAL', (m) => ms(m.total_ms)],
            ['DOWNTIME', (m) => ms(m.downtime_ms)],
            ['REASON', (m) => m.reason ?? ''],
          ],
          opts.json,
          'no migrations',
        );
      }),
    );

  program
    .command('deployments')
    .description('list deployments and their health')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts, command: Command) => {
        const rows = await clientFor(command).get<(DeploymentView & { health: string })[]>('/api/v1/deployments');
        printRows(
          rows,
          [
            ['NAME', (d) => d.name],
            ['HEALTH', (d) => d.health],
            ['READY', (d) => `${d.healthy_instances}/${d.replicas}`],
            ['MIN', (d) => d.min_available],
            ['ID', (d) => d.id],
          ],
          opts.json,
          'no deployments',
        );
      }),
    );

  program
    .command('deploy')
    .description('apply a deployment spec from a YAML or JSON file: create it, or update it (replicas, min_available) when it exists')
    .requiredOption('-f, --file <file>', 'deployment spec: {name, replicas, min_available, workload: {command, args, env, health_path} or {driver: vm, image, memory_mb, vcpus, guest_port, health_path}, node_selector}')
    .option('--json', 'machine-readable output: {result, changed, deployment}')
    .action(
      action(async (opts, command: Command) => {
        let spec: unknown;
        try {
          spec = parseYaml(readFileSync(opts.file, 'utf8'));
        } catch (error) {
          throw new Error(`cannot read ${opts.file}: ${(error as Error).message}`);
        }
        const name = typeof spec === 'object' && spec !== null ? (spec as { name?: unknown }).name : undefined;
        if (typeof name !== 'string' || name === '') throw new Error(`${opts.file} has no name; a deployment spec needs name: <lowercase-name>`);
        const applied = await clientFor(command).put<AppliedDeployment>(`/api/v1/deployments/${enc(name)}`, spec);
        if (opts.json) return printJson(applied);
        const d = applied.deployment;
        const what = applied.result === 'configured' ? ` (${applied.changed.join(', ')})` : '';
        process.stdout.write(`deployment/${d.name} ${applied.result}${what}: ${d.replicas} replica(s), min_available ${d.min_available}\n`);
      }),
    );
}
