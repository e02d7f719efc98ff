import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RegisterRequest } from '../../domain/protocol.js';
import { appendEvents } from '../../store/events.js';
import { hostnameOfNodeId, insertNode, lockNodeByHostname, type NodeIdentity, updateNodeRegistration } from '../../store/nodes.js';
import { agentErrors } from '../agent-errors.js';
import type { OperatorContext } from '../context.js';
import type { ApiError } from '../errors.js';
import { EVENT } from '../../domain/events.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const newCredential = () => randomBytes(32).toString('base64url');

/** Whether `presented` is the credential whose digest is `stored` (constant time). */
function holdsCredential(stored: string | null, presented: string | undefined): boolean {
  if (stored === null || presented === undefined) return false;
  return timingSafeEqual(Buffer.from(stored, 'hex'), createHash('sha256').update(presented).digest());
}

/** What registration changes about a node, field by field: the `node.reregistered` event records it. */
function identityChanges(before: NodeIdentity, request: RegisterRequest): Record<string, { from: unknown; to: unknown }> {
  const after = { region: request.region, role: request.role, labels: request.labels ?? {}, max_instances: request.max_instances };
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const [field, to] of Object.entries(after)) {
    const from = before[field as keyof typeof after];
    if (JSON.stringify(sortKeys(from)) !== JSON.stringify(sortKeys(to))) changes[field] = { from, to };
  }
  return changes;
}

function sortKeys(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)));
}

type Outcome = { nodeId: string; credential: string } | { refused: ApiError };

/**
 * Registration through the agent gateway (DESIGN.md §9). A new hostname enrolls with the agent
 * (enrollment) token alone. An existing node is registered again only by the agent holding its
 * credential, or after an admin's re-enroll cleared it; anyone else gets 403 and changes
 * nothing but the audit trail (`node.reregistration_refused`), so one leaked agent token cannot
 * take over other nodes. On an open operator (no tokens) anyone may, as before: the demo's
 * agents restart with any state.
 */
export async function registerAgent(
  ctx: OperatorContext,
  request: RegisterRequest,
  who: { actor: string; presented: string | undefined },
): Promise<{ nodeId: string; credential: string }> {
  const outcome = await ctx.db.transaction(async (tx): Promise<Outcome> => {
    for (let attempt = 0; ; attempt++) {
      const existing = await lockNodeByHostname(tx, request.hostname);
      if (existing) return reregister(existing);
      if (request.node_id !== undefined) {
        const owner = await hostnameOfNodeId(tx, request.node_id);
        if (owner !== undefined) return { refused: agentErrors.nodeIdTaken(request.node_id, request.hostname) };
      }
      const credential = newCredential();
      const inserted = await insertNode(tx, request, request.node_id ?? ctx.newId(), sha256(credential));
      if (inserted) {
        await appendEvents(tx, [
          {
            kind: EVENT.node.registered,
            actor: who.actor,
            nodeId: inserted.id,
            data: { hostname: request.hostname, region: request.region, role: request.role, agent_version: request.agent_version },
          },
        ]);
        return { nodeId: inserted.id, credential };
      }
      // A concurrent registration took the hostname or the id first: look again (once).
      if (attempt > 0) return { refused: agentErrors.nodeIdTaken(request.node_id ?? '', request.hostname) };
    }

    async function reregister(node: NodeIdentity): Promise<Outcome> {
      const proven = holdsCredential(node.credential_hash, who.presented);
      const reEnrolled = node.credential_hash === null;
      if (!proven && !reEnrolled && ctx.tokens) {
        // Refused, and recorded: the audit event is the only write, so an attack is visible.
        await appendEvents(tx, [
          {
            kind: EVENT.node.reregistration_refused,
            actor: who.actor,
            nodeId: node.id,
            data: {
              hostname: node.hostname,
              reason: who.presented === undefined ? 'no node credential presented' : 'wrong node credential',
              claimed: { region: request.region, role: request.role, labels: request.labels ?? {}, max_instances: request.max_instances, agent_version: request.agent_version },
            },
          },
        ]);
        return { refused: agentErrors.credentialRequired(node.hostname, node.id) };
      }
      // The proven credential is kept, not rotated: an agent killed between our commit and its
      // state-file write would otherwise hold a void credential and need an admin to get back.
      const credential = proven && who.presented !== undefined ? who.presented : newCredential();
      await updateNodeRegistration(tx, node.id, request, sha256(credential));
      await appendEvents(tx, [
        {
          kind: EVENT.node.reregistered,
          actor: who.actor,
          nodeId: node.id,
          data: {
            hostname: node.hostname,
            region: request.region,
            agent_version: request.agent_version,
            proof: proven ? 'credential' : reEnrolled ? 're-enrolled' : 'open operator',
            credential: proven ? 'kept' : 'issued',
            changes: identityChanges(node, request),
          },
        },
      ]);
      return { nodeId: node.id, credential };
    }
  });
  if ('refused' in outcome) throw outcome.refused;
  return outcome;
}
