// The edge in front of the operator replicas (issue 11, item 6): `/d/drydock/…` goes to every
// live, ready replica the registry lists, so API clients use one address while a replica stops.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeRouter } from '../../src/edge/router.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

describe('drydock edge: a route to the operator replicas', () => {
  let t: TestDb;
  let a: RunningOperator;
  let b: RunningOperator | undefined;
  let edge: EdgeRouter;

  beforeAll(async () => {
    t = await createTestDb();
    a = await startTestOperator(t.db, { hostname: 'cp-a', region: 'eu-west' });
    b = await startTestOperator(t.db, { hostname: 'cp-b', region: 'eu-west' });
    // The edge learns endpoints from replica a; its full refresh every 5 s follows the registry.
    edge = new EdgeRouter({ listen: '127.0.0.1:0', operatorUrls: [a.url], log: pino({ level: 'silent' }), holdMs: 5000 });
    await edge.start();
  });
  afterAll(async () => {
    await edge?.stop();
    await b?.close();
    await a?.close();
    await t?.cleanup();
  });

  it('sends API calls to every ready replica, and loses none while one of them stops', async () => {
    await waitFor('both replicas behind the edge', async () => (edge.endpoints.snapshot().drydock?.length ?? 0) === 2 || (await edge.endpoints.refresh(), false), {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    expect(edge.endpoints.snapshot().drydock?.sort()).toEqual([a.url, (b as RunningOperator).url].sort());

    const stats = { sent: 0, failed: 0, errors: [] as string[] };
    let running = true;
    const traffic = (async () => {
      while (running) {
        stats.sent++;
        try {
          const response = await fetch(`${edge.url}/d/drydock/api/v1/nodes`, { signal: AbortSignal.timeout(10_000) });
          if (response.status !== 200) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
          await response.json();
        } catch (error) {
          stats.failed++;
          stats.errors.push((error as Error).message);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor('traffic flowing', async () => stats.sent > 20);
    await (b as RunningOperator).close();
    b = undefined;
    await waitFor('the stopped replica gone from the route', async () => (edge.endpoints.snapshot().drydock?.length === 1 ? true : (await edge.endpoints.refresh(), false)), {
      timeoutMs: 20_000,
      intervalMs: 200,
    });
    const sentAfter = stats.sent;
    await waitFor('more traffic', async () => stats.sent > sentAfter + 20);
    running = false;
    await traffic;
    expect({ failed: stats.failed, errors: stats.errors.slice(0, 3) }).toEqual({ failed: 0, errors: [] });
    expect(edge.endpoints.snapshot().drydock).toEqual([a.url]);
  });

  it('refuses a deployment that would take the route name', async () => {
    expectApiError(await new ApiClient(a.url).post('/api/v1/deployments', { name: 'drydock', replicas: 0, workload: { command: 'x' } }), 400, 'VALIDATION_FAILED');
  });
});
