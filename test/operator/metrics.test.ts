// The operator's /metrics against a real operator and the real agent protocol: the series
// deploy/prometheus/alerts.yaml and deploy/grafana/drydock.json read, with values that follow
// the world (README: Monitoring).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, startTestOperator, waitFor } from '../support/operator.js';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe(`operator metrics on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const scrape = async () => (await api.get<string>('/metrics')).text;

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db, { heartbeatGraceMs: 1500 });
    api = new ApiClient(op.url);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('process and Node.js metrics keep their standard names; build info and leadership are exported', async () => {
    const text = await scrape();
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).not.toMatch(/^drydock_operator_process_/m);
    expect(text).toMatch(new RegExp(`^drydock_build_info\\{version="test",nodejs="${process.version}",engine="${t.db.engine}"\\} 1$`, 'm'));
    expect(sample(text, 'drydock_leader')).toBe(1);
    expect(sample(text, 'drydock_rollouts{status="running"}')).toBe(0);
    expect(sample(text, 'drydock_rollout_tasks{phase="draining"}')).toBe(0);
    expect(sample(text, 'drydock_approvals_pending{kind="plan"}')).toBe(0);
    expect(sample(text, 'drydock_rollout_tasks_past_deadline')).toBe(0);
  });

  it("a recovered node's down series drops to 0 instead of vanishing", async () => {
    const node = await FakeNode.register(api, { hostname: 'flappy-1', region: 'eu-west' });
    await node.heartbeat();
    // Listed from the region's first node on, whatever its status.
    expect(sample(await scrape(), 'drydock_nodes{status="down",region="eu-west"}')).toBeDefined();
    await waitFor('the silent node to be down', async () => sample(await scrape(), 'drydock_nodes{status="down",region="eu-west"}') === 1, { timeoutMs: 30_000 });
    node.startHeartbeats(200);
    try {
      const text = await waitFor('the node to be back', async () => {
        const body = await scrape();
        return sample(body, 'drydock_nodes{status="ready",region="eu-west"}') === 1 ? body : undefined;
      }, { timeoutMs: 30_000 });
      expect(sample(text, 'drydock_nodes{status="down",region="eu-west"}')).toBe(0);
    } finally {
      await node.stopHeartbeats();
    }
  });

  it('long-polls are counted, not timed: they stay out of the latency histogram', async () => {
    const node = await FakeNode.register(api, { hostname: 'polling-1' });
    const desired = await node.heartbeat();
    const response = await api.get(`/api/v1/agent/desired?node_id=${node.id}&after=${desired.generation}&wait=1`, {
      headers: { 'x-drydock-node-credential': node.credential },
    });
    expect(response.status).toBe(200);
    const text = await scrape();
    expect(sample(text, 'drydock_http_long_polls_total{route="/api/v1/agent/desired",status_code="200"}')).toBe(1);
    expect(text).not.toMatch(/^drydock_http_request_duration_seconds_\w+\{[^}]*route="\/api\/v1\/agent\/desired"/m);
    expect(sample(text, 'drydock_http_request_duration_seconds_count{method="POST",route="/api/v1/agent/heartbeat",status_code="200"}')).toBeGreaterThanOrEqual(1);

    const stream = new AbortController();
    const response2 = await fetch(`${op.url}/api/v1/events/stream`, { signal: stream.signal });
    expect(response2.status).toBe(200);
    stream.abort();
    const after = await waitFor('the closed event stream to be counted', async () => {
      const body = await scrape();
      return sample(body, 'drydock_http_long_polls_total{route="/api/v1/events/stream",status_code="200"}') === 1 ? body : undefined;
    }, { timeoutMs: 30_000 });
    expect(after).not.toMatch(/^drydock_http_request_duration_seconds_\w+\{[^}]*route="\/api\/v1\/events\/stream"/m);
  });

  it('counts install outcomes and drains from the event log', async () => {
    const node = await FakeNode.register(api, { hostname: 'installing-1' });
    const at = new Date().toISOString();
    node.installs = [{ component: 'nginx', version: '1.2.0', previous_version: '1.1.0', phase: 'done', updated_at: at }];
    await node.heartbeat();
    node.installs = [{ component: 'nginx', version: '1.3.0', previous_version: '1.2.0', phase: 'reverted', reason: 'health check failed', updated_at: at }];
    await node.heartbeat();
    await waitFor('the installs to be counted', async () => {
      const text = await scrape();
      return sample(text, 'drydock_installs_total{component="nginx",phase="done"}') === 1 && sample(text, 'drydock_installs_total{component="nginx",phase="reverted"}') === 1;
    }, { timeoutMs: 30_000 });

    node.startHeartbeats(200);
    try {
      // Only a node that is not down drains (the test's grace is short).
      await waitFor('the node to be ready', async () => (await api.ok<{ status: string }>(`/api/v1/nodes/${node.id}`)).status === 'ready', { timeoutMs: 30_000 });
      expect((await api.post(`/api/v1/nodes/${node.id}/drain`, {})).status).toBe(202);
      const text = await waitFor('the empty drain to finish and be observed', async () => {
        const body = await scrape();
        return sample(body, 'drydock_drain_duration_seconds_count{outcome="drained"}') === 1 ? body : undefined;
      }, { timeoutMs: 30_000 });
      expect(sample(text, 'drydock_drain_duration_seconds_count{outcome="failed"}')).toBe(0);
      expect(sample(text, 'drydock_drains_open')).toBe(0);
    } finally {
      await node.stopHeartbeats();
    }
  });

  it('counts what the log held before a scrape only once, however often it is scraped', async () => {
    const a = await scrape();
    const b = await scrape();
    expect(sample(b, 'drydock_installs_total{component="nginx",phase="done"}')).toBe(sample(a, 'drydock_installs_total{component="nginx",phase="done"}'));
  });
});
