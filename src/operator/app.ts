import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import { hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { authorize, bearerToken, isOpenPath, type Role } from './auth.js';
import type { OperatorContext } from './context.js';
import { ApiError, errors } from './errors.js';
import { isConnectionLost } from '../store/db.js';
import { databaseUnavailable } from './db-errors.js';
import { clientErrorHandler, fastifyServerOptions, guardBodyRate, HTTP_LIMIT_DEFAULTS, type HttpLimits, httpErrors } from './http-limits.js';
import { registerInputGuard } from './input-guard.js';
import { openApiOptions } from './openapi.js';
import { registerRequestLog, requestIdOf } from './request-log.js';
import type { ServerTls } from '../tls.js';
import './request-actor.js';
import { agentRoutes } from './routes/agent.js';
import { artifactRoutes } from './routes/artifacts.js';
import { deploymentRoutes } from './routes/deployments.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { instanceRoutes } from './routes/instances.js';
import { nodeComponentRoutes } from './routes/node-components.js';
import { nodeRoutes } from './routes/nodes.js';
import { fleetStateRoutes } from './routes/fleet-state.js';
import { rolloutActionRoutes } from './routes/rollout-actions.js';
import { rolloutRoutes } from './routes/rollouts.js';
import { policyRoutes } from './routes/policies.js';
import { quarantineRoutes } from './routes/quarantine.js';
import { migrationRoutes } from './routes/migrations.js';
import { operatorRoutes } from './routes/operators.js';
import { webhookRoutes } from './routes/webhooks.js';
import { sessionPrincipal, uiSessionRoutes } from './ui-session.js';
import { uiRoutes } from './ui-static.js';
import { registerCompression } from './compression.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Least role that may call the route; default viewer for reads, operator for writes; `agent` marks the agent gateway. */
    role?: Role;
    /** The request waits for a change (long-poll, event stream): counted, not timed, in /metrics. */
    longPoll?: boolean;
    /** Served without authentication (the dashboard's login); default false. */
    open?: boolean;
  }
}

function errorBody(error: ApiError) {
  return { error: { code: error.code, message: error.message, details: error.details } };
}

/** Maps anything thrown in a route to the error catalog; a user's mistake never becomes a 500. */
function toApiError(error: FastifyError): ApiError | undefined {
  if (error instanceof ApiError) return error;
  if (isConnectionLost(error)) return databaseUnavailable(error);
  if (hasZodFastifySchemaValidationErrors(error)) {
    return errors.validation({
      issues: error.validation.map((v) => ({
        // The root of the body is instancePath "/": it is reported as plain "body", not "body.".
        path: [error.validationContext ?? 'body', ...v.instancePath.split('/').filter(Boolean)].join('.'),
        message: v.message,
      })),
    });
  }
  if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (error.statusCode === 400 && error instanceof SyntaxError)) {
    return errors.malformedJson(error.message);
  }
  if (error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return errors.malformedJson('the body is empty; send {} or drop the content-type');
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
  }
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError(413, 'BODY_TOO_LARGE', 'the request body is too large');
  // The HTTP layer's own refusals, raised before any route runs (frameworkErrors, clientError).
  if (error.code === 'FST_ERR_BAD_URL') return httpErrors.badUrl();
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') return httpErrors.uriTooLong(MAX_PARAM_LENGTH);
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return httpErrors.requestTimeout();
  if (error.code === 'HPE_HEADER_OVERFLOW') return httpErrors.headersTooLarge();
  if (error.code?.startsWith('HPE_')) return httpErrors.badHttp(error.code);
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return new ApiError(error.statusCode, error.code ?? 'BAD_REQUEST', error.message);
  }
  return undefined;
}

/** Longest path segment routed (a hostname is up to 253 characters); longer gets 414 URI_TOO_LONG. */
const MAX_PARAM_LENGTH = 256;

export async function buildOperatorApp(ctx: OperatorContext, limits: HttpLimits = HTTP_LIMIT_DEFAULTS, tls?: ServerTls): Promise<FastifyInstance> {
  const serverOptions = fastifyServerOptions(limits);
  const app = Fastify({
    ...serverOptions,
    // HTTPS takes the same header timeouts: fastify passes `http` options only to a plain server.
    ...(tls ? { https: { ...serverOptions.http, ...tls } } : {}),
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Errors Fastify raises before routing (bad %-escapes, overlong segments) and Node's parser
    // errors (431, timeouts) leave in the catalog shape like every other error.
    frameworkErrors: (error, _req, reply) => {
      const apiError = toApiError(error) ?? httpErrors.badHttp(error.code);
      void (reply as FastifyReply).code(apiError.status).send(errorBody(apiError));
    },
    clientErrorHandler: clientErrorHandler((error) => toApiError(error as FastifyError) ?? httpErrors.badHttp(error.code ?? 'unknown')),
    loggerInstance: ctx.log as FastifyBaseLogger,
    // Fastify's own two lines per request are replaced by one of ours (request-log.ts).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'request_id' }), forceCloseConnections: true, return503OnClosing: false,
    genReqId: requestIdOf });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // `curl -d '{"force": true}'` without -H sends form encoding; runbooks do exactly that, so a
  // form-encoded body is read as the JSON it is (and refused clearly when it is not JSON).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (error) {
      done(errors.malformedJson(`${(error as Error).message} (send JSON with Content-Type: application/json)`), undefined);
    }
  });

  await app.register(swagger, openApiOptions(ctx.version));

  // First, so a request refused by auth still gets its id echoed and its log line.
  registerRequestLog(app);

  await app.register(cookie);
  app.addHook('onRequest', async (req) => {
    if (!ctx.tokens || isOpenPath(req.url) || req.routeOptions.config.open === true) return;
    const token = bearerToken(req.headers.authorization);
    // Without a bearer token, the dashboard's session cookie (which needs a CSRF token to write).
    const principal = token ? ctx.tokens.authenticate(token) : await sessionPrincipal(ctx, req);
    if (!principal) throw errors.unauthenticated();
    req.principal = principal;
    // The gateway is everything under /api/v1/agent/ whatever a route's config says, so a new
    // gateway route cannot be opened to people's tokens by forgetting `role: 'agent'`.
    const gateway = req.routeOptions.url?.startsWith('/api/v1/agent/') ?? false;
    const needed = gateway ? 'agent' : (req.routeOptions.config.role ?? (req.method === 'GET' || req.method === 'HEAD' ? 'viewer' : 'operator'));
    authorize(principal, needed);
  });

  registerInputGuard(app);
  registerCompression(app);
  guardBodyRate(app.server, limits);

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const status_code = String(reply.statusCode);
    // A long-poll lasts as long as it waits: in the histogram it would hide real latency.
    if (req.routeOptions.config.longPoll) ctx.metrics.longPolls.inc({ route, status_code });
    else ctx.metrics.httpDuration.observe({ method: req.method, route, status_code }, reply.elapsedTime / 1000);
  });

  app.setNotFoundHandler((req, reply) => {
    const error = errors.routeNotFound(req.method, req.url.split('?')[0] ?? req.url);
    void reply.code(404).send(errorBody(error));
  });

  app.setErrorHandler((error: FastifyError, req, reply) => {
    const apiError = toApiError(error);
    if (apiError) return reply.code(apiError.status).send(errorBody(apiError));
    const internal = errors.internal(error);
    // pino's err serializer folds the cause's message and stack into `err`, not its own fields
    // (a pg error's code, detail, constraint): those are logged beside it.
    req.log.error({ err: internal, cause: typeof error === 'object' && error !== null ? { ...error } : undefined, url: req.url }, 'request failed');
    return reply.code(internal.status).send(errorBody(internal));
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(async (scope) => healthRoutes(scope, ctx));
  await app.register(async (scope) => nodeRoutes(scope, ctx));
  await app.register(async (scope) => instanceRoutes(scope, ctx));
  await app.register(async (scope) => deploymentRoutes(scope, ctx));
  await app.register(async (scope) => nodeComponentRoutes(scope, ctx));
  await app.register(async (scope) => artifactRoutes(scope, ctx));
  await app.register(async (scope) => agentRoutes(scope, ctx));
  await app.register(async (scope) => eventRoutes(scope, ctx));
  await app.register(async (scope) => rolloutRoutes(scope, ctx));
  await app.register(async (scope) => rolloutActionRoutes(scope, ctx));
  await app.register(async (scope) => fleetStateRoutes(scope, ctx));
  await app.register(async (scope) => policyRoutes(scope, ctx));
  await app.register(async (scope) => quarantineRoutes(scope, ctx));
  await app.register(async (scope) => migrationRoutes(scope, ctx));
  await app.register(async (scope) => operatorRoutes(scope, ctx));
  await app.register(async (scope) => webhookRoutes(scope, ctx));
  await app.register(async (scope) => uiSessionRoutes(scope, ctx));
  await app.register(async (scope) => uiRoutes(scope));
  return app;
}
