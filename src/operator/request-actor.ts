import type { FastifyRequest } from 'fastify';
import type { Principal } from './auth.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

/** Who did it, for the event log: the token's name, or "anonymous" on an open operator. */
export function actorOf(request: FastifyRequest): string {
  return request.principal?.name ?? 'anonymous';
}
