import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import type { ApiClient } from '../../src/api-client.js';
import { signArtifact } from '../../src/signing.js';
import type { InstanceView } from '../../src/store/instances.js';
import { buildArchive, publisher, sha256File } from '../agent/artifact-fixtures.js';
import { startTestFleet } from '../support/processes.js';

// Preflight fed by the workloads themselves (issue 12, item 4), with real processes: a real
// operator, one real agent and a real process workload that writes its status file
// (DRYDOCK_STATUS_FILE). Its agent reads the file at its supervision tick and reports it in the
// heartbeat: down to its last healthy volume replica → the plan for its node fails
// volume-last-replica; a backup running → backup-in-progress fails; cleared → the plan passes.

const HOST = 'wr-worker-1';

/** The workload: serves /health, and writes (atomically) or removes its status file on PUT /report. */
const WORKLOAD = `
import { createServer } from 'node:http';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
const file = process.env.DRYDOCK_STATUS_FILE;
createServer((req, res) => {
  if (req.url === '/health') return res.end('ok');
  if (req.method === 'PUT' && req.url === '/report') {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (body === '') rmSync(file, { force: true });
      else if (req.headers['x-raw'] === 'yes') writeFileSync(file, body);
      else { writeFileSync(file + '.tmp', body); renameSync(file + '.tmp', file); }
      res.end(file);
    });
    return;
  }
  res.statusCode = 404;
  res.end();
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

interface Check {
  id: string;
  status: string;
  objects?: string[];
}

describe('workloads report their volume and activity through their agent, and preflight follows', () => {
  let fleet: LocalFleet;
  let api: ApiClient;
  let instance: InstanceView;
  const spec = {
    name: 'wr',
    target: { component: 'tool', version: '2.0.0' },
    selector: { hostnames: [HOST] },
    strategy: { batch: { size: 1 }, drain: { mode: 'none' } },
  };
  const checks = async () => (await api.post<{ preflight: { checks: Check[] } }>('/api/v1/rollouts/plan', spec)).preflight.checks;
  const check = async (id: string) => (await checks()).find((c) => c.id === id) as Check;
  const view = () => api.get<InstanceView>(`/api/v1/instances/${instance.id}`);
  /** The workload itself writes its status file (through its own HTTP endpoint). */
  const report = async (body: string, raw = false) => {
    const response = await fetch(`${instance.url}/report`, { method: 'PUT', body, headers: raw ? { 'x-raw': 'yes' } : {} });
    expect(response.status).toBe(200);
    return response.text();
  };

  beforeAll(async () => {
    fleet = await startTestFleet('workload-reports', ['--heartbeat-grace', '3s', '--heartbeat-interval', '1s']);
    api = fleet.client();
    fleet.startAgent(HOST, 'us-east', ['--max-instances', '4', '--heartbeat-interval', '1s']);
    await fleet.waitForNodes(1, 60_000);
    const archive = await buildArchive(fleet.dir, { tool: 'tool 2.0.0', health: '#!/bin/sh\nexit 0\n' });
    const sha256 = sha256File(archive);
    const signature = signArtifact(publisher.privatePem, { component: 'tool', version: '2.0.0', kind: 'binary', sha256 });
    const query = new URLSearchParams({ component: 'tool', version: '2.0.0', kind: 'binary', signature, public_key: publisher.publicPem });
    const published = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(archive) });
    expect(published.status).toBe(201);
    await api.post(`/api/v1/artifacts/${((await published.json()) as { id: string }).id}/bless`);
    const script = join(fleet.dir, 'reporting-workload.mjs');
    writeFileSync(script, WORKLOAD);
    await api.post('/api/v1/deployments', { name: 'db', replicas: 1, min_available: 0, workload: { command: process.execPath, args: [script], health_path: '/health' } });
    instance = await waitFor(
      'the workload healthy',
      async () => (await api.get<InstanceView[]>('/api/v1/instances?deployment=db')).find((i) => i.healthy && i.url),
      30_000,
    );
  }, 120_000);

  afterAll(async () => {
    await fleet?.recordInstancePids();
    const pids = [...(fleet?.spawnedPids ?? [])];
    await fleet?.stop();
    expect(pids.filter(isAlive)).toEqual([]);
  }, 60_000);

  it('blocks the plan while the workload says its volume is down to its last replica, then a backup runs; passes once it clears them', async () => {
    expect(await check('volume-last-replica')).toMatchObject({ status: 'pass' });
    expect(await check('backup-in-progress')).toMatchObject({ status: 'pass' });

    // The status file the agent named is under its data dir, one per instance.
    const file = await report('{"volume": {"replicas": 3, "healthy_replicas": 1}}');
    expect(file).toBe(join(fleet.dir, 'agents', HOST, 'instances', `${instance.id}.status.json`));
    await waitFor('the agent to report the volume', async () => ((await view()).volume?.healthy_replicas === 1 ? true : undefined), 15_000);
    expect(await view()).toMatchObject({ volume: { replicas: 3, healthy_replicas: 1 }, volume_source: 'agent', volume_expires_at: null });
    expect(await check('volume-last-replica')).toMatchObject({ status: 'fail', objects: [instance.id] });
    expect(await check('backup-in-progress')).toMatchObject({ status: 'pass' });

    await report('{"volume": {"replicas": 3, "healthy_replicas": 3}, "activity": "backup"}');
    await waitFor('the agent to report the backup', async () => ((await view()).activity === 'backup' ? true : undefined), 15_000);
    expect(await view()).toMatchObject({ volume: { replicas: 3, healthy_replicas: 3 }, activity: 'backup', activity_source: 'agent' });
    expect(await check('volume-last-replica')).toMatchObject({ status: 'pass' });
    expect(await check('backup-in-progress')).toMatchObject({ status: 'fail', objects: [instance.id] });

    // A status file that is not JSON (caught mid-write) is ignored with one warning: the last
    // good report stands, the agent lives on.
    await report('{"activity": "bac', true);
    await waitFor('the agent to warn once', async () => (agentLog().includes('ignored the workload status') ? true : undefined), 15_000);
    await new Promise((r) => setTimeout(r, 2500)); // two more supervision ticks over the same bad file
    expect(agentLog().split('ignored the workload status').length - 1).toBe(1);
    expect((await view()).activity).toBe('backup');
    expect(await check('backup-in-progress')).toMatchObject({ status: 'fail' });

    await report('{"volume": null, "activity": null}');
    await waitFor('the agent to clear both', async () => {
      const v = await view();
      return v.volume === null && v.activity === null ? v : undefined;
    }, 15_000);
    const cleared = await checks();
    expect(cleared.find((c) => c.id === 'volume-last-replica')).toMatchObject({ status: 'pass' });
    expect(cleared.find((c) => c.id === 'backup-in-progress')).toMatchObject({ status: 'pass' });
  });

  it('a storage system’s PUT stays while the agent reports nothing, and the agent’s report takes over once it is deleted', async () => {
    await report('');
    await api.request('PUT', `/api/v1/instances/${instance.id}/activity`, { activity: 'snapshot', expires_in: '10m' });
    // Several heartbeats of an agent that reports nothing leave it.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await view()).toMatchObject({ activity: 'snapshot', activity_source: 'api' });
    expect(await check('backup-in-progress')).toMatchObject({ status: 'fail' });

    await report('{"activity": "restore"}');
    await api.request('DELETE', `/api/v1/instances/${instance.id}/activity`);
    await waitFor('the agent’s report to count again', async () => ((await view()).activity === 'restore' ? true : undefined), 15_000);
    expect(await view()).toMatchObject({ activity_source: 'agent' });
    await report('');
    await waitFor('the agent to clear it', async () => ((await view()).activity === null ? true : undefined), 15_000);
    expect(await check('backup-in-progress')).toMatchObject({ status: 'pass' });
  });

  it('a restarted agent adopts the workload and goes on reporting its backup, never clearing it meanwhile', async () => {
    await report('{"activity": "backup"}');
    await waitFor('the agent to report the backup', async () => ((await view()).activity === 'backup' ? true : undefined), 15_000);
    const pid = (await view()).pid;
    // Sample what preflight reads through the whole restart: it must never lose the backup.
    const seen = new Set<string | null>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        seen.add((await view()).activity);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const restartedAt = Date.now();
    await fleet.stopProcess(HOST);
    fleet.startAgent(HOST, 'us-east', ['--max-instances', '4', '--heartbeat-interval', '1s']);
    await waitFor('the new agent to heartbeat', async () => {
      const [node] = await api.get<{ last_heartbeat_at: string | null }[]>('/api/v1/nodes');
      return node?.last_heartbeat_at && Date.parse(node.last_heartbeat_at) > restartedAt + 500 && agentLog().includes('adopted running instance') ? true : undefined;
    }, 30_000);
    await waitFor('three more heartbeats', async () => {
      const [node] = await api.get<{ last_heartbeat_at: string | null }[]>('/api/v1/nodes');
      return node?.last_heartbeat_at && Date.parse(node.last_heartbeat_at) > Date.now() - 500 ? true : undefined;
    }, 10_000);
    sampling = false;
    await sampler;
    expect([...seen]).toEqual(['backup']);
    expect(await view()).toMatchObject({ pid, activity: 'backup', activity_source: 'agent' });
    await report('');
    await waitFor('the agent to clear it', async () => ((await view()).activity === null ? true : undefined), 15_000);
  }, 90_000);

  const agentLog = () => readFileSync(join(fleet.dir, `${HOST}.log`), 'utf8');
});
