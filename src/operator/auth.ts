import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { agentErrors } from './agent-errors.js';
import { ApiError, errors } from './errors.js';

/** People's roles are ordered; `agent` is separate: it may only use the agent gateway. */
export const USER_ROLES = ['viewer', 'operator', 'approver', 'admin'] as const;
export type UserRole = (typeof USER_ROLES)[number];
export type Role = UserRole | 'agent';

export interface Principal {
  name: string;
  role: Role;
}

const TokenEntry = z.object({
  name: z.string().min(1),
  token: z.string().min(16, 'tokens must be at least 16 characters'),
  role: z.enum([...USER_ROLES, 'agent']),
});
const TokenList = z.array(TokenEntry).min(1);
const TokensFile = z.object({ tokens: TokenList }).transform((file) => file.tokens);

export interface TokenStore {
  authenticate(bearer: string): Principal | undefined;
}

const digest = (token: string) => createHash('sha256').update(token).digest();

/** Reads a tokens file: `tokens: [{name, token, role}]` (or the bare list). Throws a readable error. */
export function loadTokens(path: string): TokenStore {
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read tokens file ${path}: ${(error as Error).message}`, { cause: error });
  }
  // The shape picks the schema: a union of the two would report any mistake inside an entry
  // (a misspelled role, say) as "(root): Invalid input" instead of naming the field.
  const parsed = Array.isArray(raw) ? TokenList.safeParse(raw) : TokensFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`tokens file ${path} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  const entries = parsed.data;
  const names = new Set<string>();
  for (const entry of entries) {
    if (names.has(entry.name)) throw new Error(`tokens file ${path}: name ${entry.name} appears twice`);
    names.add(entry.name);
  }
  const known = entries.map((e) => ({ digest: digest(e.token), principal: { name: e.name, role: e.role } }));
  return {
    authenticate(bearer) {
      // Compare digests in constant time so response timing does not leak token prefixes.
      const candidate = digest(bearer);
      return known.find((k) => timingSafeEqual(k.digest, candidate))?.principal;
    },
  };
}

/**
 * Throws 403 unless the principal may act with `needed`. The agent gateway (`needed` agent) and
 * the people's API are disjoint (DESIGN.md §9): an agent token works only on the gateway, and no
 * person's token works there, admin included: a person never gets a node credential.
 */
export function authorize(principal: Principal, needed: Role): void {
  if (needed === 'agent') {
    if (principal.role !== 'agent') throw agentErrors.gatewayForAgentsOnly(principal.role);
    return;
  }
  if (principal.role === 'agent') throw agentErrors.agentTokenOffGateway(needed);
  if (USER_ROLES.indexOf(principal.role) < USER_ROLES.indexOf(needed)) throw errors.forbidden(needed, principal.role);
}

export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

export function isOpenPath(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  // `/` and `/ui/…` are the dashboard's static files (no data; it reads the API with its session).
  const dashboard = path === '/' || path === '/ui' || path.startsWith('/ui/');
  return dashboard || path === '/health' || path.startsWith('/health/') || path === '/metrics' || path === '/openapi.json';
}

export { ApiError };
