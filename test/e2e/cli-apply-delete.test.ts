// `drydock deploy -f` applies (created / configured / unchanged), `drydock delete deployment`
// stops the real instance processes, `drydock delete node` decommissions a drained node and its
// agent is refused: the built CLI against a real operator and real agents.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { isAlive, type LocalFleet } from '../../src/demo/local-fleet.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { waitFor } from '../support/operator.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

describe('CLI: deploy applies, delete removes', () => {
  let fleet: LocalFleet;
  let spec: string;
  const cli = (args: string[]) => {
    const result = spawnSync(process.execPath, [BUNDLE, '--operator', fleet.operatorUrl, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const writeSpec = (over: Record<string, unknown> = {}) =>
    writeFileSync(
      spec,
      stringify({ name: 'hello', replicas: 2, min_available: 1, workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' }, ...over }),
    );
  const instances = () => fleet.client().get<InstanceView[]>('/api/v1/instances?deployment=hello');

  beforeAll(async () => {
    fleet = await startTestFleet('cli-apply');
    for (const hostname of ['apply-1', 'apply-2', 'apply-3']) fleet.startAgent(hostname, 'us-east', ['--max-instances', '4', '--heartbeat-interval', '1s']);
    await fleet.waitForNodes(3);
    spec = join(fleet.dir, 'hello.yaml');
  });
  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('deploy -f creates, then says unchanged, then configured with the fields it changed', async () => {
    writeSpec();
    const created = cli(['deploy', '-f', spec]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toBe('deployment/hello created: 2 replica(s), min_available 1\n');
    await waitFor('two healthy instances', async () => (await instances()).filter((i) => i.published).length === 2, { timeoutMs: 30_000 });

    const unchanged = cli(['deploy', '-f', spec]);
    expect(unchanged.stdout).toBe('deployment/hello unchanged: 2 replica(s), min_available 1\n');

    writeSpec({ replicas: 3 });
    const configured = cli(['deploy', '-f', spec, '-o', 'json']);
    expect(configured.code).toBe(0);
    expect(JSON.parse(configured.stdout)).toMatchObject({ result: 'configured', changed: ['replicas'], deployment: { name: 'hello', replicas: 3 } });
    await waitFor('three healthy instances', async () => (await instances()).filter((i) => i.published).length === 3, { timeoutMs: 30_000 });
    writeSpec({ replicas: 3 });
    expect(JSON.parse(cli(['deploy', '-f', spec, '--json']).stdout)).toMatchObject({ result: 'unchanged', changed: [] });
  });

  it('refuses bad specs with `error: … [CODE]` and exit 1, changing nothing', async () => {
    const before = JSON.stringify((await instances()).map((i) => i.id).sort());
    writeSpec({ replicas: -1 });
    const invalid = cli(['deploy', '-f', spec]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^error: .* \[VALIDATION_FAILED\]\n/);
    writeSpec({ replicas: 3, workload: { command: process.execPath, args: [BUNDLE, 'example-app', '--v2'], health_path: '/health' } });
    const fixed = cli(['deploy', '-f', spec]);
    expect(fixed.code).toBe(1);
    expect(fixed.stderr).toMatch(/^error: workload of deployment hello cannot change .* \[DEPLOYMENT_FIELD_IMMUTABLE\]\n$/);
    writeFileSync(spec, 'replicas: 2\n');
    const nameless = cli(['deploy', '-f', spec]);
    expect(nameless.code).toBe(1);
    expect(nameless.stderr).toContain('has no name');
    expect(JSON.stringify((await instances()).map((i) => i.id).sort())).toBe(before);
    const unknown = cli(['delete', 'deployment', 'no-such-app']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: no deployment "no-such-app"; .* \[DEPLOYMENT_NOT_FOUND\]\n$/);
  });

  it('delete node refuses a node that is not drained, then decommissions it once drained; its agent is refused', async () => {
    const refused = cli(['delete', 'node', 'apply-3']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: node apply-3 is not cordoned; .* \[NODE_NOT_DRAINED\]\n$/);

    const drained = cli(['node', 'drain', 'apply-3', '--wait']);
    expect(drained.code, drained.stderr).toBe(0);
    await waitFor('no instance row left on apply-3', async () => (await fleet.client().get<InstanceView[]>('/api/v1/nodes/apply-3/instances')).length === 0, { timeoutMs: 30_000 });
    const deleted = cli(['delete', 'node', 'apply-3', '-o', 'json']);
    expect(deleted.code, deleted.stderr).toBe(0);
    const gone = JSON.parse(deleted.stdout) as { id: string; hostname: string };
    expect(gone).toMatchObject({ hostname: 'apply-3', result: 'deleted' });

    const listed = JSON.parse(cli(['nodes', '-o', 'json']).stdout) as NodeView[];
    expect(listed.map((n) => n.hostname).sort()).toEqual(['apply-1', 'apply-2']);
    // Its agent keeps trying and is refused: it does not come back as a node.
    const agentLog = fleet.processes.get('apply-3')?.log as string;
    await waitFor('the agent to be refused with NODE_DECOMMISSIONED', async () => readFileSync(agentLog, 'utf8').includes('NODE_DECOMMISSIONED'), { timeoutMs: 20_000 });
    expect((await fleet.client().get<NodeView[]>('/api/v1/nodes')).map((n) => n.hostname).sort()).toEqual(['apply-1', 'apply-2']);
    const again = cli(['delete', 'node', 'apply-3']);
    expect(again.stderr).toMatch(/\[NODE_NOT_FOUND\]\n$/);
  });

  it('delete deployment --wait withdraws and stops every instance process, then the deployment is gone', async () => {
    await fleet.recordInstancePids();
    const pids = (await instances()).map((i) => i.pid).filter((p): p is number => typeof p === 'number');
    expect(pids.length).toBeGreaterThanOrEqual(3);
    expect(pids.every(isAlive)).toBe(true);
    const deleted = cli(['delete', 'deployment', 'hello', '--wait', '--timeout', '60']);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toBe('deployment/hello deleted\n');
    expect(JSON.parse(cli(['deployments', '-o', 'json']).stdout) as DeploymentView[]).toEqual([]);
    expect(await fleet.client().get<InstanceView[]>('/api/v1/instances')).toEqual([]);
    await waitFor('every instance process to exit', async () => pids.every((pid) => !isAlive(pid)), { timeoutMs: 30_000 });
  });
});
