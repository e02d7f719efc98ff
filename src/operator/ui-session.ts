// Dashboard sessions (DESIGN.md §9): a person trades a token for an HttpOnly, SameSite=Strict
// cookie once; the session lives in the database with an expiry. Requests made with the cookie
// that change state must also carry the session's CSRF token in a header, which a page on another
// origin cannot read or forge. Bearer tokens keep working exactly as before, with no CSRF token.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deleteUiSession, findUiSession, insertUiSession } from '../store/ui-sessions.js';
import { bearerToken, type Principal, type Role } from './auth.js';
import type { OperatorContext } from './context.js';
import { sessionErrors } from './session-errors.js';

export const SESSION_COOKIE = 'drydock_session';
export const CSRF_HEADER = 'x-csrf-token';
/** A session lasts 8 hours from login (a working day), then the dashboard asks for the token again. */
export const SESSION_TTL_MS = 8 * 60 * 60_000;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The principal of the request's session cookie, or undefined without one (or with an unknown
 * or expired one). Throws CSRF_TOKEN_INVALID for a state-changing request without the session's
 * CSRF token: a forged form post from another site carries the cookie but never the header.
 */
export async function sessionPrincipal(ctx: OperatorContext, req: FastifyRequest): Promise<Principal | undefined> {
  const id = req.cookies[SESSION_COOKIE];
  if (!id) return undefined;
  const session = await findUiSession(ctx.db, sha256(id));
  if (!session) return undefined;
  if (!SAFE_METHODS.has(req.method)) {
    const sent = req.headers[CSRF_HEADER];
    if (typeof sent !== 'string' || !sameSecret(sent, session.csrf_token)) throw sessionErrors.csrfTokenInvalid();
  }
  return { name: session.principal, role: session.role as Role };
}

const LoginBody = z.object({ token: z.string().min(1).max(4096).describe('a person\'s token from the operator\'s tokens file') }).strict();
const SessionView = z.object({
  authenticated: z.boolean().describe('false: log in first (POST /api/v1/session)'),
  name: z.string().nullable(),
  role: z.string().nullable(),
  csrf_token: z.string().nullable().describe('send it as X-CSRF-Token on every state-changing request made with the cookie'),
  expires_at: z.string().nullable(),
  open: z.boolean().describe('true when the operator runs without tokens (loopback only): no login needed'),
});

function setCookie(reply: FastifyReply, req: FastifyRequest, value: string, maxAgeSeconds: number) {
  void reply.setCookie(SESSION_COOKIE, value, {
    httpOnly: true,
    sameSite: 'strict',
    secure: req.protocol === 'https',
    path: '/',
    maxAge: maxAgeSeconds,
  });
}

/** An operator without tokens (loopback only) lets everyone in as admin; the dashboard says so. */
const OPEN_SESSION = { authenticated: true, name: 'anonymous', role: 'admin', csrf_token: null, expires_at: null, open: true };

export async function uiSessionRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['session'];

  app.post(
    '/api/v1/session',
    { config: { open: true }, schema: { tags, operationId: 'createSession', body: LoginBody, response: { 200: SessionView }, summary: 'Log in to the dashboard: trade a token for a session cookie' } },
    async (req, reply) => {
      if (!ctx.tokens) return OPEN_SESSION;
      const principal = ctx.tokens.authenticate(req.body.token);
      if (!principal) throw sessionErrors.loginTokenUnknown();
      if (principal.role === 'agent') throw sessionErrors.loginForPeopleOnly();
      const id = randomBytes(32).toString('base64url');
      const csrf = randomBytes(32).toString('base64url');
      const expiresAt = await insertUiSession(ctx.db, { idSha256: sha256(id), principal: principal.name, role: principal.role, csrfToken: csrf, ttlMs: SESSION_TTL_MS });
      setCookie(reply, req, id, SESSION_TTL_MS / 1000);
      return { authenticated: true, name: principal.name, role: principal.role, csrf_token: csrf, expires_at: expiresAt, open: false };
    },
  );

  // Open, so that the dashboard can ask "am I logged in?" and hear "no" without a 401 (which
  // a browser reports as a console error on every first visit).
  app.get(
    '/api/v1/session',
    { config: { open: true }, schema: { tags, operationId: 'getSession', response: { 200: SessionView }, summary: 'Who this request is: the bearer token, else the session cookie' } },
    async (req) => {
      if (!ctx.tokens) return OPEN_SESSION;
      const bearer = bearerToken(req.headers.authorization);
      if (bearer) {
        const principal = ctx.tokens.authenticate(bearer);
        if (!principal) throw sessionErrors.loginTokenUnknown();
        return { authenticated: true, name: principal.name, role: principal.role, csrf_token: null, expires_at: null, open: false };
      }
      const id = req.cookies[SESSION_COOKIE];
      const session = id ? await findUiSession(ctx.db, sha256(id)) : undefined;
      if (!session) return { authenticated: false, name: null, role: null, csrf_token: null, expires_at: null, open: false };
      return { authenticated: true, name: session.principal, role: session.role, csrf_token: session.csrf_token, expires_at: session.expires_at, open: false };
    },
  );

  app.delete(
    '/api/v1/session',
    { config: { role: 'viewer' }, schema: { tags, operationId: 'deleteSession', response: { 200: z.object({ logged_out: z.literal(true) }) }, summary: 'Log out: end the session and clear its cookie' } },
    async (req, reply) => {
      const id = req.cookies[SESSION_COOKIE];
      if (id) await deleteUiSession(ctx.db, sha256(id));
      setCookie(reply, req, '', 0);
      return reply.send({ logged_out: true as const });
    },
  );
}
