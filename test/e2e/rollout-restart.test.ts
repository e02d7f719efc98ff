import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import type { ApiClient } from '../../src/api-client.js';
import { isAlive, LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { signArtifact } from '../../src/signing.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { EventRow } from '../../src/store/events.js';
import type { InstanceView } from '../../src/store/instances.js';
import type { NodeView } from '../../src/store/nodes.js';
import { buildArchive, publisher, sha256File } from '../agent/artifact-fixtures.js';
import { BUNDLE } from '../support/processes.js';

// drain.mode: restart with real processes: a real operator (embedded Postgres), three real agents
// and a real deployment (example-app processes). Each node's instances are withdrawn and stopped
// on the node, the component is installed, and the same instances start again on the same node
// (new PIDs) before the health gate; nothing moves. Two nodes go at once: the deployment's
// min_available allows it, so the rollout needs no --override.

const HOSTS = ['rs-worker-1', 'rs-worker-2', 'rs-worker-3'] as const;
const OK = '#!/bin/sh\nexit 0\n';

interface RolloutDetail {
  id: string;
  status: string;
  preflight: { checks: { id: string; status: string }[]; blocked: boolean };
  batches: { nodes: { hostname: string }[] }[];
  tasks: { node_id: string; hostname: string; state: string; last_error: string | null }[];
}

describe('drain.mode: restart end to end: instances restart on their own node around the install', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-restart-'));
  const fleet = new LocalFleet({ bin: BUNDLE, dir: join(dir, 'fleet') });
  let api: ApiClient;
  let keyFile: string;
  let deployment: DeploymentView;

  const nodes = () => api.get<NodeView[]>('/api/v1/nodes');
  const instances = async () => (await api.get<InstanceView[]>('/api/v1/instances')).filter((i) => i.deployment_id === deployment.id);
  const events = (query: string) => api.get<EventRow[]>(`/api/v1/events?after=0&limit=5000${query ? `&${query}` : ''}`);

  async function publish(version: string): Promise<void> {
    const archive = await buildArchive(dir, { 'web-server': `web ${version}`, health: OK });
    const sha256 = sha256File(archive);
    const signature = signArtifact(publisher.privatePem, { component: 'web', version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature, public_key: publisher.publicPem, disruptive: 'true' });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(archive) });
    const text = await response.text();
    expect(response.status, text).toBe(201);
    await api.post(`/api/v1/artifacts/${(JSON.parse(text) as { id: string }).id}/bless`);
  }

  beforeAll(async () => {
    keyFile = join(dir, 'drydock-signing.pub');
    writeFileSync(keyFile, publisher.publicPem);
    await fleet.startOperator(`127.0.0.1:${await freePort()}`, ['--heartbeat-grace', '3s', '--heartbeat-interval', '1s']);
    api = fleet.client();
    for (const host of HOSTS) fleet.startAgent(host, 'us-east', ['--max-instances', '4', '--heartbeat-interval', '1s', '--trusted-key', keyFile, '--drain-delay', '500ms']);
    await fleet.waitForNodes(3, 60_000);
    for (const v of ['1.0.0', '2.0.0', '2.1.0']) await publish(v);
    for (const n of await nodes()) await api.request('PUT', `/api/v1/nodes/${n.id}/components/web`, { version: '1.0.0' });
    await waitFor('every node on web 1.0.0', async () => ((await nodes()).every((n) => n.components.web === '1.0.0') ? true : undefined), 30_000);
    deployment = await api.post<DeploymentView>('/api/v1/deployments', {
      name: 'restart-hello',
      replicas: 3,
      min_available: 1,
      workload: { command: process.execPath, args: [BUNDLE, 'example-app'], health_path: '/health' },
    });
    await waitFor('three healthy endpoints', async () => {
      const list = await api.get<{ healthy: boolean }[]>(`/api/v1/deployments/${deployment.id}/endpoints`);
      return list.filter((e) => e.healthy).length === 3 ? list : undefined;
    }, 30_000);
    await fleet.recordInstancePids();
  }, 150_000);

  afterAll(async () => {
    await fleet.stop();
    expect([...fleet.spawnedPids].filter(isAlive)).toEqual([]);
    expect([...fleet.instancePids].filter(isAlive)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stops, installs and restarts in place, two nodes at once within min_available; PIDs change, nodes keep their instances, the rollout completes', async () => {
    const before = await instances();
    expect(before).toHaveLength(3);
    expect(new Set(before.map((i) => i.node_id)).size).toBe(3);
    for (const i of before) expect(isAlive(i.pid as number)).toBe(true);

    const created = await api.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'web-2-restart',
      target: { component: 'web', version: '2.0.0' },
      selector: { regions: ['us-east'] },
      strategy: {
        order: 'rolling',
        batch: { size: 2 },
        maxUnavailablePerRegion: 2,
        drain: { mode: 'restart', timeout: '1m' },
        health: { minHealthyTime: '1s', timeout: '1m', checks: ['version', 'heartbeat', 'instances'] },
      },
    });
    // Two nodes (two of three replicas) down at once: min_available 1 holds, so nothing is overridden.
    expect(created.preflight.blocked).toBe(false);
    expect(created.preflight.checks.find((c) => c.id === 'disruption-budget')?.status).toBe('pass');
    expect(created.batches.map((b) => b.nodes.length)).toEqual([2, 1]);

    const done = await waitFor(
      'the restart rollout to complete',
      async () => {
        const r = await api.get<RolloutDetail>(`/api/v1/rollouts/${created.id}`);
        if (['failed', 'rolled_back', 'aborted'].includes(r.status)) throw new Error(`rollout ended ${r.status}: ${JSON.stringify(r.tasks)}`);
        return r.status === 'completed' ? r : undefined;
      },
      120_000,
    );
    expect(done.tasks.map((t) => t.state)).toEqual(['done', 'done', 'done']);
    await fleet.recordInstancePids();

    // The world: every node on 2.0.0 and ready; the same instances on the same nodes, running and
    // serving again under new PIDs; the old processes are gone.
    for (const n of await nodes()) expect([n.hostname, n.components.web, n.status, n.draining]).toEqual([n.hostname, '2.0.0', 'ready', false]);
    const after = await waitFor('every instance healthy and published again', async () => {
      const list = await instances();
      return list.length === 3 && list.every((i) => i.healthy && i.published && i.pid !== null) ? list : undefined;
    }, 30_000);
    const byId = new Map(after.map((i) => [i.id, i]));
    for (const old of before) {
      const now = byId.get(old.id);
      expect(now?.node_id, `instance ${old.id} stays on its node`).toBe(old.node_id);
      expect(now?.pid).not.toBe(old.pid);
      expect(isAlive(old.pid as number)).toBe(false);
      expect(isAlive(now?.pid as number)).toBe(true);
      expect(now?.restart_on_enable).toBe(false);
    }
    const health = await api.get<{ status: string }>(`/api/v1/deployments/${deployment.id}/health`);
    expect(health.status).toBe('healthy');

    // Nothing moved; per node: drain (restart) → withdrawn → drained → installed → restarted → done.
    const log = await events(`rollout_id=${created.id}`);
    const all = await events('');
    expect(all.filter((e) => e.kind.startsWith('instance.migration') || e.kind === 'instance.replacement_placed')).toEqual([]);
    for (const task of done.tasks) {
      const instanceId = before.find((i) => i.node_id === task.node_id)?.id;
      const at = (kind: string, pick: (e: EventRow) => boolean = () => true) => {
        const found = all.find((e) => e.kind === kind && e.node_id === task.node_id && pick(e));
        expect(found, `${kind} on ${task.hostname}`).toBeDefined();
        return (found as EventRow).id;
      };
      const drainStarted = at('node.drain_started', (e) => e.data.mode === 'restart');
      const withdrawn = at('instance.withdrawn', (e) => e.instance_id === instanceId);
      const drained = at('node.drained');
      const installed = at('node.install_completed', (e) => e.data.version === '2.0.0');
      const restarted = at('node.instances_restarted');
      const republished = at('instance.published', (e) => e.instance_id === instanceId && e.id > restarted);
      const completed = log.find((e) => e.kind === 'rollout.node_completed' && e.node_id === task.node_id)?.id as number;
      expect([drainStarted, withdrawn, drained, installed, restarted, republished].every((id, k, list) => k === 0 || id > (list[k - 1] as number))).toBe(true);
      expect(restarted).toBeLessThan(completed);
      expect(all.find((e) => e.id === restarted)?.data.restarted).toEqual([instanceId]);
    }
    // The first batch's two nodes were down at once: both instances withdrawn before either restarted.
    const firstBatch = new Set(created.batches[0]?.nodes.map((n) => n.hostname));
    const firstIds = done.tasks.filter((t) => firstBatch.has(t.hostname)).map((t) => t.node_id);
    const withdrawnIds = all.filter((e) => e.kind === 'instance.withdrawn' && firstIds.includes(e.node_id as string)).map((e) => e.id);
    const restartedIds = all.filter((e) => e.kind === 'node.instances_restarted' && firstIds.includes(e.node_id as string)).map((e) => e.id);
    expect(withdrawnIds).toHaveLength(2);
    expect(Math.max(...withdrawnIds)).toBeLessThan(Math.min(...restartedIds));

    // Two versions on each node: nothing pruned yet (the default keeps current and previous).
    expect(await events('kind_prefix=node.components_pruned')).toEqual([]);
  }, 180_000);

  it('after a second rollout each node keeps 2.1.0 and 2.0.0 and prunes 1.0.0 on disk; the operator records node.components_pruned', async () => {
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', {
      name: 'web-2-1-restart',
      target: { component: 'web', version: '2.1.0' },
      selector: { regions: ['us-east'] },
      strategy: { order: 'rolling', batch: { size: 3 }, maxUnavailablePerRegion: 3, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' } },
    });
    await waitFor('the second rollout to complete', async () => ((await api.get<RolloutDetail>(`/api/v1/rollouts/${created.id}`)).status === 'completed' ? true : undefined), 90_000);
    const pruned = await waitFor('a pruning event from every node', async () => {
      const list = await events('kind_prefix=node.components_pruned');
      return list.length === 3 ? list : undefined;
    }, 30_000);
    const list = await nodes();
    for (const e of pruned) expect(e.data).toEqual({ component: 'web', version: '2.1.0', pruned: ['1.0.0'], kept: ['2.1.0', '2.0.0'] });
    expect(new Set(pruned.map((e) => e.node_id))).toEqual(new Set(list.map((n) => n.id)));
    for (const host of HOSTS) {
      const root = join(dir, 'fleet', 'agents', host, 'components', 'web');
      expect(readdirSync(root).filter((e) => !e.startsWith('.')).sort(), host).toEqual(['2.0.0', '2.1.0', 'current']);
    }
  }, 120_000);
});
