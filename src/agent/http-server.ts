import Fastify, { type FastifyInstance } from 'fastify';
import type { Agent } from './agent.js';

/** The agent's own endpoints: /health (runbooks grep it for "healthy") and /metrics. */
export async function buildAgentServer(agent: Agent): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, forceCloseConnections: true });
  app.get('/health', async () => agent.health());
  app.get('/health/live', async () => ({ status: 'live' }));
  app.get('/metrics', async (_req, reply) => {
    agent.metrics.instances.reset();
    for (const instance of agent.actualInstances()) agent.metrics.instances.inc({ status: instance.status });
    return reply.header('content-type', agent.metrics.registry.contentType).send(await agent.metrics.registry.metrics());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'ROUTE_NOT_FOUND', message: `no route ${req.method} ${req.url} on the agent`, details: {} } });
  });
  return app;
}
