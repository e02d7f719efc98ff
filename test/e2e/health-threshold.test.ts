import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import { startTestFleet } from '../support/processes.js';

// A workload whose /health answers 500 while a flag file exists: one slow or failed probe from a
// busy guest must not withdraw a serving endpoint (the agent counts failures in a row, 3 by
// default), while one that keeps failing is withdrawn.
const FLAKY_APP = `
const { createServer } = require('node:http');
const { existsSync } = require('node:fs');
createServer((req, res) => {
  const sick = req.url === '/health' && existsSync(process.env.SICK_FLAG);
  res.writeHead(sick ? 500 : 200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ sick }));
}).listen(Number(process.env.PORT), '127.0.0.1');
process.once('SIGTERM', () => process.exit(0));
`;

describe('agent health probes: failures in a row before an endpoint is withdrawn', () => {
  let fleet: LocalFleet;
  let flag: string;
  let deployment: DeploymentView;
  const instance = async () => ((await fleet.client().get<InstanceView[]>(`/api/v1/instances?deployment=${deployment.id}`)) as InstanceView[])[0];

  beforeAll(async () => {
    fleet = await startTestFleet('health-threshold');
    flag = join(fleet.dir, 'sick');
    fleet.startAgent('hc-1', 'us-east', ['--heartbeat-interval', '1s']);
    await fleet.waitForNodes(1);
    deployment = await fleet.client().post<DeploymentView>('/api/v1/deployments', {
      name: 'flaky',
      replicas: 1,
      workload: { command: process.execPath, args: ['-e', FLAKY_APP], env: { SICK_FLAG: flag }, health_path: '/health' },
    });
    await waitFor('the instance serving', async () => ((await instance())?.healthy && (await instance())?.published ? true : undefined), 60_000);
    await fleet.recordInstancePids();
  });

  afterAll(async () => {
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
    expect([...(fleet?.instancePids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('keeps serving through one or two failed probes, and is withdrawn when they keep failing', async () => {
    // ~1.5 s of failures: at most two probes (one a second) see them.
    writeFileSync(flag, '');
    const seen: boolean[] = [];
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      seen.push((await instance())?.healthy === true);
      await new Promise((r) => setTimeout(r, 100));
    }
    rmSync(flag);
    for (let i = 0; i < 20; i++) {
      seen.push((await instance())?.healthy === true);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.every(Boolean)).toBe(true);
    expect(existsSync(flag)).toBe(false);

    writeFileSync(flag, '');
    const sick = await waitFor('the instance unhealthy', async () => {
      const now = await instance();
      return now && !now.healthy ? now : undefined;
    }, 30_000);
    expect(sick).toMatchObject({ healthy: false, desired: 'running' });
    const endpoints = await fleet.client().get<{ instance_id: string; healthy: boolean }[]>(`/api/v1/deployments/${deployment.id}/endpoints`);
    expect(endpoints.filter((e) => e.healthy).map((e) => e.instance_id)).not.toContain(sick.id);
    rmSync(flag);
    await waitFor('the instance healthy again after one good probe', async () => ((await instance())?.healthy ? true : undefined), 30_000);
  });
});
