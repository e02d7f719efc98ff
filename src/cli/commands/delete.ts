// `drydock delete deployment|node NAME`: the two things that leave the fleet on purpose.
import type { Command } from 'commander';
import type { ApiClient } from '../../api-client.js';
import type { DeploymentView } from '../../store/deployments.js';
import { action, clientFor } from '../context.js';
import { printJson } from '../output.js';

const enc = encodeURIComponent;

/** Follows a deleted deployment until the operator no longer knows it (its last instance stopped). */
async function waitUntilGone(client: ApiClient, id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.get<DeploymentView>(`/api/v1/deployments/${enc(id)}`);
    } catch (error) {
      if ((error as { code?: string }).code === 'DEPLOYMENT_NOT_FOUND') return;
      throw error;
    }
    if (Date.now() > deadline) throw new Error(`deployment ${id} still has instances stopping after ${Math.round(timeoutMs / 1000)} s; follow it with \`drydock instances --deployment ${id}\``);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function registerDeleteCommands(program: Command): void {
  const del = program.command('delete').description('delete a deployment (its instances stop) or decommission a drained node');

  del
    .command('deployment <name>')
    .description('delete a deployment: its endpoints are withdrawn and its instances stopped, then it is gone (refused while an instance is moving)')
    .option('--wait', 'return only once every instance stopped and the deployment is gone')
    .option('--timeout <seconds>', 'with --wait: give up after this long (default 300)', '300')
    .option('--json', 'machine-readable output: the deployment as the delete left it')
    .action(
      action(async (name: string, opts, command: Command) => {
        const client = clientFor(command);
        const view = await client.request<DeploymentView>('DELETE', `/api/v1/deployments/${enc(name)}`);
        if (opts.wait) await waitUntilGone(client, view.id, Number(opts.timeout) * 1000);
        if (opts.json) return printJson(view);
        const state = opts.wait ? 'deleted' : `deleting (${view.instances} instance(s) to stop; \`drydock deployments\` lists it until they have)`;
        process.stdout.write(`deployment/${view.name} ${state}\n`);
      }),
    );

  del
    .command('node <node>')
    .description('decommission a node (hostname or id): only once it is cordoned and drained and in no unfinished rollout; its agent is refused from then on')
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts, command: Command) => {
        const gone = await clientFor(command).request<{ id: string; hostname: string }>('DELETE', `/api/v1/nodes/${enc(id)}`);
        if (opts.json) return printJson(gone);
        process.stdout.write(`node/${gone.hostname} deleted (${gone.id}); its agent is refused from now on\n`);
      }),
    );
}
