import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

const run = promisify(execFile);

describe('the CLI and the seed runbooks against a real operator and agents', () => {
  let fleet: LocalFleet;
  let client: ApiClient;
  let dir: string;

  /** Runs the built CLI; resolves with exit code, stdout and stderr (never throws on exit code). */
  async function drydock(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, [BUNDLE, ...args], {
        env: { ...process.env, DRYDOCK_URL: fleet.operatorUrl },
        timeout: 60_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const e = error as { code: number; stdout: string; stderr: string };
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout, stderr: e.stderr };
    }
  }

  /** Runs a runbook line in bash with OP pointing at the operator, as the seeds do with http://operator:8080. */
  async function bash(script: string): Promise<string> {
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, OP: fleet.operatorUrl }, timeout: 60_000 });
    return stdout.trim();
  }

  beforeAll(async () => {
    fleet = await startTestFleet('cli');
    client = fleet.client();
    dir = fleet.operatorUrl && (await import('node:os')).tmpdir();
    for (const region of ['us-east', 'eu-west', 'ap-south']) fleet.startAgent(`${region}-worker-1`, region, ['--max-instances', '4', '--heartbeat-interval', '1s']);
    fleet.startAgent('us-east-worker-2', 'us-east', ['--max-instances', '4', '--heartbeat-interval', '1s']);
    await fleet.waitForNodes(4);
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('deploys from a YAML file and lists nodes, deployments and instances as tables and JSON', async () => {
    const spec = join(dir, `drydock-cli-${process.pid}.yaml`);
    writeFileSync(
      spec,
      ['name: web', 'replicas: 3', 'min_available: 2', 'workload:', `  command: ${process.execPath}`, `  args: [${JSON.stringify(BUNDLE)}, example-app]`, '  health_path: /health', ''].join('\n'),
    );
    const deployed = await drydock('deploy', '-f', spec);
    expect(deployed.stderr).toBe('');
    expect(deployed.stdout).toMatch(/^deployment\/web created: 3 replica\(s\), min_available 2$/m);
    await waitFor('web to be healthy', async () => ((await client.get<{ status: string }>('/api/v1/deployments/web/health')).status === 'healthy' ? true : undefined), 30_000);
    await fleet.recordInstancePids();

    const table = await drydock('nodes');
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^HOSTNAME\s+REGION\s+ROLE\s+STATUS/);
    expect(table.stdout).toMatch(/us-east-worker-2/);
    const json = JSON.parse((await drydock('nodes', '--json')).stdout) as NodeView[];
    expect(json.map((n) => n.hostname).sort()).toEqual(['ap-south-worker-1', 'eu-west-worker-1', 'us-east-worker-1', 'us-east-worker-2']);
    const deployments = JSON.parse((await drydock('deployments', '--json')).stdout) as DeploymentView[];
    expect(deployments.map((d) => [d.name, d.healthy_instances])).toEqual([['web', 3]]);
    const instances = JSON.parse((await drydock('instances', '--deployment', 'web', '--json')).stdout) as InstanceView[];
    expect(instances).toHaveLength(3);
    // deploy -f applies: the same file again changes nothing and says so.
    const again = await drydock('deploy', '-f', spec);
    expect({ code: again.code, stdout: again.stdout.trim() }).toEqual({ code: 0, stdout: 'deployment/web unchanged: 3 replica(s), min_available 2' });
  });

  it('runs the seed runbook lines unchanged: find, drain, wait for 0, enable, capacity queries', async () => {
    expect(await bash('curl -s $OP/health | jq -r .status')).toBe('healthy');
    expect(await bash('if curl -s "$OP/health" | grep -q "healthy"; then echo ok; fi')).toBe('ok');
    const node = 'us-east-worker-1';
    const nodeId = await bash(`curl -s $OP/api/v1/nodes | jq -r ".[] | select(.hostname==\\"${node}\\") | .id"`);
    expect(nodeId).toMatch(/^[0-9a-f-]{36}$/);
    await bash(`curl -s -X POST "$OP/api/v1/nodes/${nodeId}/drain" >/dev/null`);
    const waited = await bash(`
      for i in $(seq 1 120); do
        vm_count=$(curl -s "$OP/api/v1/nodes/${nodeId}" | jq -r '.active_instances')
        if [ "$vm_count" = "0" ]; then echo drained; break; fi
        sleep 0.25
      done`);
    expect(waited).toBe('drained');
    await bash(`curl -s -X POST "$OP/api/v1/nodes/${nodeId}/enable" >/dev/null`);
    expect((await client.get<NodeView>(`/api/v1/nodes/${nodeId}`)).status).toBe('ready');

    const distribution = await bash(`curl -s $OP/api/v1/nodes | jq -r '.[] | "\\(.hostname): \\(.active_instances)/\\(.max_instances) VMs"'`);
    expect(distribution).toMatch(/us-east-worker-1: 0\/4 VMs/);
    const watchLine = await bash(`curl -s $OP/api/v1/nodes | jq -r ".[] | \\"\\(.hostname): \\(.active_instances) VMs, Status: \\(.status), Drain: \\(.draining)\\""`);
    expect(watchLine).toMatch(/us-east-worker-1: 0 VMs, Status: ready, Drain: false/);
    const withRoom = await bash(`curl -s $OP/api/v1/nodes | jq -r '.[] | select(.active_instances < .max_instances) | .hostname' | sort`);
    expect(withRoom.split('\n')).toContain('us-east-worker-1');
    expect(await bash(`curl -s $OP/api/v1/nodes | jq '[.[] | select(.available_capacity > 0)] | length'`)).toBe('4');

    const health = await bash(`for deployment in $(curl -s $OP/api/v1/deployments | jq -r '.[].id'); do curl -s "$OP/api/v1/deployments/\${deployment}/health" | jq -r .status; done`);
    expect(health).toBe('healthy');
    const instanceHealth = await bash(`INSTANCE_ID=$(curl -s $OP/api/v1/instances | jq -r '.[0].id'); curl -s "$OP/api/v1/instances/\${INSTANCE_ID}/health" | jq -r .status`);
    expect(instanceHealth).toBe('healthy');
    // The agent's own health, as verify-node-agents.sh greps it.
    const agentUrl = (await client.get<NodeView>(`/api/v1/nodes/${nodeId}`)).agent_url as string;
    expect(await bash(`if curl -s "${agentUrl}/health" | grep -q "healthy"; then echo "✓ Healthy"; fi`)).toBe('✓ Healthy');
  });

  it('migrates one instance with the seed curl lines, including -d without a content type', async () => {
    const target = (await client.get<NodeView>('/api/v1/nodes/us-east-worker-1')).id;
    const [instance] = await client.get<InstanceView[]>('/api/v1/instances?deployment=web');
    const id = (instance as InstanceView).id;
    const reply = await bash(`curl -s -X POST "$OP/api/v1/instances/${id}/migrate" -H "Content-Type: application/json" -d "{\\"target_node\\": \\"${target}\\"}"`);
    const { replacement_id: replacement } = JSON.parse(reply) as { replacement_id: string };
    await waitFor(
      'the replacement to take over',
      async () => {
        const list = await client.get<InstanceView[]>('/api/v1/instances?deployment=web');
        return list.some((i) => i.id === replacement && i.published && i.node_id === target) && !list.some((i) => i.id === id) ? true : undefined;
      },
      30_000,
    );
    await fleet.recordInstancePids();
    const [other] = (await client.get<InstanceView[]>('/api/v1/instances?deployment=web')).filter((i) => i.node_id !== target);
    const forced = JSON.parse(await bash(`curl -s -X POST "$OP/api/v1/instances/${(other as InstanceView).id}/migrate" -d '{"force": true}'`));
    expect(forced).toMatchObject({ status: 'migrating' });
    const garbage = JSON.parse(await bash(`curl -s -X POST "$OP/api/v1/instances/${(other as InstanceView).id}/migrate" -d 'force=true'`));
    expect(garbage.error.code).toBe('MALFORMED_JSON');
  });

  it('drain --wait exits 0 when done; pinned instances block the drain until forced, and come back on enable', async () => {
    const pinnedSpec = join(dir, `drydock-pinned-${process.pid}.json`);
    writeFileSync(
      pinnedSpec,
      JSON.stringify({
        name: 'pinned',
        replicas: 1,
        min_available: 0,
        workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' },
        node_selector: { hostname: 'ap-south-worker-1' },
      }),
    );
    expect((await drydock('deploy', '-f', pinnedSpec)).code).toBe(0);
    const pinned = await waitFor(
      'the pinned instance to be healthy',
      async () => {
        const [i] = await client.get<InstanceView[]>('/api/v1/instances?deployment=pinned');
        return i?.healthy ? i : undefined;
      },
      30_000,
    );
    await fleet.recordInstancePids();
    expect(pinned.hostname).toBe('ap-south-worker-1');
    expect(pinned.migratable).toBe(false);

    const blocked = await drydock('node', 'drain', 'ap-south-worker-1', '--wait');
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toMatch(/blocked/);
    const node = await client.get<NodeView>('/api/v1/nodes/ap-south-worker-1');
    expect(node.drain?.state).toBe('blocked');
    expect(node.drain?.blocked_by).toEqual([pinned.id]);
    expect(node.active_instances).toBe(1);
    expect(isAlive(pinned.pid as number)).toBe(true);

    const forced = await drydock('node', 'drain', 'ap-south-worker-1', '--force', '--wait');
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    await waitFor('the pinned process to stop', async () => (isAlive(pinned.pid as number) ? undefined : true), 15_000);
    const parked = await client.get<InstanceView>(`/api/v1/instances/${pinned.id}`);
    expect(parked.restart_on_enable).toBe(true);

    expect((await drydock('node', 'enable', 'ap-south-worker-1')).code).toBe(0);
    const restarted = await waitFor(
      'the pinned instance to run again on its node',
      async () => {
        const i = await client.get<InstanceView>(`/api/v1/instances/${pinned.id}`);
        return i.healthy && i.pid !== pinned.pid ? i : undefined;
      },
      30_000,
    );
    await fleet.recordInstancePids();
    expect(restarted.hostname).toBe('ap-south-worker-1');

    const drained = await drydock('node', 'drain', 'eu-west-worker-1', '--wait');
    expect(drained.code).toBe(0);
    expect(drained.stdout).toMatch(/drain completed/);
    await fleet.recordInstancePids();
    expect((await drydock('node', 'enable', 'eu-west-worker-1')).code).toBe(0);
  });

  it('fails with a clear message and exit 1 on bad input', async () => {
    const missing = await drydock('node', 'drain', 'no-such-node');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no node "no-such-node".*\[NODE_NOT_FOUND\]/);
    const unreachable = await drydock('nodes', '--operator', 'http://127.0.0.1:9');
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach the operator/);
    const version = await drydock('--version');
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
