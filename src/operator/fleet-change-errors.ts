import type { DecommissionRefusal } from '../domain/node-decommission.js';
import { ApiError } from './errors.js';

/** The apply and delete part of the error catalog (deployments applied and deleted, nodes decommissioned). */
export const fleetChangeErrors = {
  deploymentNameMismatch: (path: string, body: string) =>
    new ApiError(400, 'DEPLOYMENT_NAME_MISMATCH', `the URL names deployment ${path} but the spec names ${body}; apply a spec to the URL of its own name`, {
      path,
      name: body,
    }),
  deploymentFieldImmutable: (name: string, fields: string[], instances: number) =>
    new ApiError(
      409,
      'DEPLOYMENT_FIELD_IMMUTABLE',
      `${fields.join(' and ')} of deployment ${name} cannot change while it has ${instances} instance(s) (they keep what they were started with); ` +
        `apply it with replicas: 0 first, or \`drydock delete deployment ${name}\` and apply again, or apply under a new name; nothing was changed`,
      { name, fields, instances },
    ),
  deploymentDeleting: (name: string) =>
    new ApiError(
      409,
      'DEPLOYMENT_DELETING',
      `deployment ${name} is being deleted (its instances are stopping); wait until \`drydock deployments\` no longer lists it, then apply again; nothing was changed`,
      { name },
    ),
  deploymentMigrating: (name: string, migrations: string[]) =>
    new ApiError(
      409,
      'DEPLOYMENT_MIGRATING',
      `${migrations.length} instance(s) of deployment ${name} are moving between nodes; wait for the moves (\`drydock migrations --state open\`) and delete again; nothing was changed`,
      { name, migrations },
    ),
  nodeNotDecommissionable: (hostname: string, refusal: DecommissionRefusal) => {
    if (refusal.code === 'NODE_IN_ROLLOUT') {
      return new ApiError(
        409,
        'NODE_IN_ROLLOUT',
        `node ${hostname} belongs to rollout(s) ${refusal.rollouts.join(', ')} that have not finished; wait for them (or abort them) before deleting it; nothing was changed`,
        { hostname, rollouts: refusal.rollouts },
      );
    }
    const why = {
      not_cordoned: 'is not cordoned; drain it first (`drydock node drain NODE --wait`)',
      drain_in_progress: 'is still draining; wait for the drain (`drydock node show NODE`)',
      hosts_instances: `still hosts ${refusal.instances} instance(s); drain it (\`drydock node drain NODE --wait\`) until none is left`,
    }[refusal.reason].replaceAll('NODE', hostname);
    return new ApiError(409, 'NODE_NOT_DRAINED', `node ${hostname} ${why}; only a drained node can be deleted; nothing was changed`, {
      hostname,
      reason: refusal.reason,
      active_instances: refusal.instances,
    });
  },
  nodeDecommissioned: (id: string, hostname: string, by: string, at: string) =>
    new ApiError(
      410,
      'NODE_DECOMMISSIONED',
      `node ${id} (${hostname}) was deleted from the fleet by ${by} at ${at}; stop this agent, or remove its agent-state.json to enroll the machine as a new node`,
      { id, hostname, decommissioned_by: by, decommissioned_at: at },
    ),
};
