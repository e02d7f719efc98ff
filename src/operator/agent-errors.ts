import { ApiError } from './errors.js';

/** The agent-identity part of the error catalog (DESIGN.md §9; kept apart so errors.ts stays small). */
export const agentErrors = {
  gatewayForAgentsOnly: (role: string) =>
    new ApiError(
      403,
      'FORBIDDEN',
      `the agent gateway (/api/v1/agent/*) takes agent tokens only; a person's token (role ${role}) is refused there, whatever its role`,
      { needed: 'agent', role },
    ),
  agentTokenOffGateway: (needed: string) =>
    new ApiError(
      403,
      'FORBIDDEN',
      `agent tokens work only on the agent gateway (/api/v1/agent/*); this action needs a person's token with role ${needed} or higher`,
      { needed, role: 'agent' },
    ),
  credentialRequired: (hostname: string, nodeId: string) =>
    new ApiError(
      403,
      'NODE_CREDENTIAL_REQUIRED',
      `node ${hostname} is registered already; registering it again needs its node credential (kept in the agent's <data-dir>/agent-state.json). ` +
        `If that file is lost, an admin must run \`drydock node re-enroll ${hostname}\`; nothing was changed`,
      { hostname, node_id: nodeId },
    ),
  nodeIdTaken: (nodeId: string, hostname: string) =>
    new ApiError(
      409,
      'NODE_ID_TAKEN',
      `node id ${nodeId} belongs to another hostname; register ${hostname} without node_id (or remove the agent's stale agent-state.json); nothing was changed`,
      { node_id: nodeId, hostname },
    ),
  artifactNotDesired: (artifactId: string, nodeId: string) =>
    new ApiError(
      403,
      'ARTIFACT_NOT_DESIRED',
      `artifact ${artifactId} is not in the desired state of node ${nodeId}; an agent may only download what its node should install`,
      { artifact_id: artifactId, node_id: nodeId },
    ),
};
