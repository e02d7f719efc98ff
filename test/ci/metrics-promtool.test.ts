import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { NodeView } from '../../src/store/nodes.js';
import { startTestFleet } from '../support/processes.js';

function promtool(text: string) {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (result.error) throw new Error(`promtool is not installed (.ci/run installs it): ${result.error.message}`);
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('/metrics of the operator and the agent pass `promtool check metrics`', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet('metrics');
    fleet.startAgent('metrics-worker-1', 'us-east', ['--heartbeat-interval', '1s']);
    await fleet.waitForNodes(1);
    // Some traffic so the histogram and counters have samples.
    await fetch(`${fleet.operatorUrl}/api/v1/nodes`);
    await fetch(`${fleet.operatorUrl}/api/v1/nodes/nope`);
  });
  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('operator metrics', async () => {
    const text = await waitFor(
      'heartbeats to be counted',
      async () => {
        const body = await (await fetch(`${fleet.operatorUrl}/metrics`)).text();
        return /^drydock_heartbeats_received_total [1-9]/m.test(body) ? body : undefined;
      },
      15_000,
    );
    expect(text).toMatch(/^drydock_nodes\{status="ready",region="us-east"\} 1$/m);
    expect(text).toMatch(/^drydock_http_request_duration_seconds_bucket\{/m);
    // The families the alert rules and the dashboard read (test/ci/monitoring.test.ts), and the
    // standard process metrics under their standard names.
    for (const line of [
      /^drydock_leader 1$/m,
      /^drydock_build_info\{version="[^"]+",nodejs="v\d+[^"]*",engine="pglite"\} 1$/m,
      /^drydock_nodes\{status="down",region="us-east"\} 0$/m,
      /^drydock_rollouts\{status="running"\} 0$/m,
      /^drydock_rollout_tasks\{phase="installing"\} 0$/m,
      /^drydock_approvals_pending\{kind="continuation"\} 0$/m,
      /^drydock_webhook_deliveries_total\{outcome="delivered"\} 0$/m,
      /^drydock_drain_duration_seconds_count\{outcome="drained"\} 0$/m,
      /^# TYPE drydock_http_long_polls_total counter$/m,
      /^process_cpu_seconds_total \d/m,
      /^nodejs_heap_size_used_bytes \d/m,
    ]) {
      expect(text).toMatch(line);
    }
    expect(text).not.toMatch(/^drydock_http_request_duration_seconds_count\{[^}]*route="\/api\/v1\/agent\/desired"/m);
    const check = promtool(text);
    expect(check.output).toBe('');
    expect(check.code).toBe(0);
  });

  it('agent metrics', async () => {
    const [node] = await fleet.client().get<NodeView[]>('/api/v1/nodes');
    const text = await (await fetch(`${node?.agent_url}/metrics`)).text();
    expect(text).toMatch(/^drydock_agent_heartbeats_sent_total \d+/m);
    const check = promtool(text);
    expect(check.output).toBe('');
    expect(check.code).toBe(0);
  });
});
