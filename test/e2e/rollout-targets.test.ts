import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import type { ApiClient } from '../../src/api-client.js';
import { isAlive, LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { signArtifact } from '../../src/signing.js';
import type { EventRow } from '../../src/store/events.js';
import type { NodeView } from '../../src/store/nodes.js';
import { buildArchive, publisher, sha256File } from '../agent/artifact-fixtures.js';
import { BUNDLE } from '../support/processes.js';

// Several components in one drain (issue 12 item 3, DESIGN.md §12) with real processes: a real
// operator and three real agents; a rollout of `targets: [web, sidecar]` installs web then
// sidecar inside one cordon/drain per node; its rollback returns sidecar first, then web, again
// in one drain per node; a sidecar build whose health check fails sends the node back to its
// old web and sidecar by itself and trips the breaker.

const HOSTS = ['tg-worker-1', 'tg-worker-2', 'tg-worker-3'] as const;
const OK = '#!/bin/sh\nexit 0\n';
const BROKEN = '#!/bin/sh\necho "sidecar health: port 9000 refused"\nexit 1\n';

interface RolloutDetail {
  id: string;
  status: string;
  tasks: { node_id: string; hostname: string; state: string; direction: string; last_error: string | null }[];
}

describe('a rollout of several components: one drain per node, in order, back in reverse', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-targets-'));
  const fleet = new LocalFleet({ bin: BUNDLE, dir: join(dir, 'fleet') });
  let api: ApiClient;
  let keyFile: string;

  const nodes = () => api.get<NodeView[]>('/api/v1/nodes');
  const rollout = (id: string) => api.get<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const events = (id: string) => api.get<EventRow[]>(`/api/v1/events?after=0&rollout_id=${id}&limit=1000`);
  const versions = async () => (await nodes()).map((n) => [n.hostname, n.components.web, n.components.sidecar]).sort();
  const waitEnd = (id: string, timeoutMs = 120_000) =>
    waitFor(
      `rollout ${id} to end`,
      async () => {
        const r = await rollout(id);
        return ['completed', 'failed', 'rolled_back', 'aborted', 'awaiting_decision'].includes(r.status) ? r : undefined;
      },
      timeoutMs,
    );

  async function publish(component: string, version: string, health = OK): Promise<void> {
    const archive = await buildArchive(dir, { [`${component}-server`]: `${component} ${version}`, health });
    const sha256 = sha256File(archive);
    const signature = signArtifact(publisher.privatePem, { component, version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component, version, kind: 'binary', signature, public_key: publisher.publicPem });
    const response = await fetch(`${fleet.operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(archive) });
    const text = await response.text();
    expect(response.status, text).toBe(201);
    await api.post(`/api/v1/artifacts/${(JSON.parse(text) as { id: string }).id}/bless`);
  }

  const spec = (name: string, web: string, sidecar: string, strategy: Record<string, unknown> = {}) => ({
    name,
    targets: [
      { component: 'web', version: web },
      { component: 'sidecar', version: sidecar },
    ],
    selector: { regions: ['us-east'] },
    strategy: { batch: { size: 1 }, drain: { mode: 'migrate', timeout: '1m' }, health: { minHealthyTime: '0s', timeout: '1m' }, ...strategy },
  });

  /** Per node (by hostname), the events of `kinds` in order (by event id), as `kind component version`. */
  async function perNode(log: readonly EventRow[], kinds: readonly string[]): Promise<Map<string, string[]>> {
    const hostnames = new Map((await nodes()).map((n) => [n.id, n.hostname]));
    const byNode = new Map<string, string[]>();
    for (const e of [...log].sort((a, b) => Number(a.id) - Number(b.id))) {
      if (!kinds.includes(e.kind) || !e.node_id) continue;
      const d = e.data as { component?: string; version?: string };
      const host = hostnames.get(e.node_id) ?? e.node_id;
      const list = byNode.get(host) ?? byNode.set(host, []).get(host)!;
      list.push([e.kind, d.component, d.version].filter((x) => x !== undefined).join(' '));
    }
    return byNode;
  }

  beforeAll(async () => {
    keyFile = join(dir, 'drydock-signing.pub');
    writeFileSync(keyFile, publisher.publicPem);
    await fleet.startOperator(`127.0.0.1:${await freePort()}`, ['--heartbeat-grace', '3s', '--heartbeat-interval', '1s']);
    api = fleet.client();
    for (const host of HOSTS) fleet.startAgent(host, 'us-east', ['--max-instances', '4', '--heartbeat-interval', '1s', '--trusted-key', keyFile]);
    await fleet.waitForNodes(3, 60_000);
    for (const v of ['1.0.0', '2.0.0', '2.1.0']) await publish('web', v);
    for (const v of ['1.0.0', '2.0.0']) await publish('sidecar', v);
    await publish('sidecar', '2.0.1', BROKEN);
    for (const n of await nodes()) {
      await api.request('PUT', `/api/v1/nodes/${n.id}/components/web`, { version: '1.0.0' });
      await api.request('PUT', `/api/v1/nodes/${n.id}/components/sidecar`, { version: '1.0.0' });
    }
    await waitFor('every node on web and sidecar 1.0.0', async () => ((await versions()).every(([, w, s]) => w === '1.0.0' && s === '1.0.0') ? true : undefined), 60_000);
  }, 180_000);

  afterAll(async () => {
    await fleet.stop();
    expect([...fleet.spawnedPids].filter(isAlive)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('installs web then sidecar inside one drain per node, and the rollback returns sidecar then web, again in one drain', async () => {
    const plan = await api.post<{ spec: { targets: unknown[] }; plan: { batches: unknown[] }; preflight: { checks: { id: string; status: string; message: string }[] } }>(
      '/api/v1/rollouts/plan',
      spec('targets-plan', '2.0.0', '2.0.0'),
    );
    expect(plan.spec.targets).toEqual([
      { component: 'web', version: '2.0.0' },
      { component: 'sidecar', version: '2.0.0' },
    ]);
    expect(plan.plan.batches).toHaveLength(3);
    expect(plan.preflight.checks.find((c) => c.id === 'artifact')).toMatchObject({ status: 'pass', message: 'web 2.0.0 is signed and blessed; sidecar 2.0.0 is signed and blessed' });

    const created = await api.post<RolloutDetail>('/api/v1/rollouts', spec('targets-forward', '2.0.0', '2.0.0'));
    const done = await waitEnd(created.id);
    expect({ status: done.status, open: done.tasks.filter((t) => t.state !== 'done') }).toEqual({ status: 'completed', open: [] });
    expect(await versions()).toEqual(HOSTS.map((h) => [h, '2.0.0', '2.0.0']));
    const forward = await perNode(await events(created.id), ['node.drain_started', 'node.component_version_set', 'rollout.node_completed']);
    for (const host of HOSTS) {
      expect(forward.get(host), host).toEqual(['node.drain_started', 'node.component_version_set web 2.0.0', 'node.component_version_set sidecar 2.0.0', 'rollout.node_completed']);
    }
    // Each component's install is its own event, web's before sidecar's on every node.
    const installs = await perNode(await api.get<EventRow[]>(`/api/v1/events?after=0&kind_prefix=node.install_completed&limit=1000`), ['node.install_completed']);
    for (const host of HOSTS) expect(installs.get(host)?.slice(-2), host).toEqual(['node.install_completed web 2.0.0', 'node.install_completed sidecar 2.0.0']);

    await api.post(`/api/v1/rollouts/${created.id}/rollback`, {});
    const back = await waitEnd(created.id);
    expect({ status: back.status, open: back.tasks.filter((t) => t.state !== 'rolled_back') }).toEqual({ status: 'rolled_back', open: [] });
    expect(await versions()).toEqual(HOSTS.map((h) => [h, '1.0.0', '1.0.0']));
    const both = await perNode(await events(created.id), ['node.drain_started', 'node.component_version_set']);
    for (const host of HOSTS) {
      expect(both.get(host), host).toEqual([
        'node.drain_started',
        'node.component_version_set web 2.0.0',
        'node.component_version_set sidecar 2.0.0',
        'node.drain_started',
        'node.component_version_set sidecar 1.0.0',
        'node.component_version_set web 1.0.0',
      ]);
    }
  }, 300_000);

  it('a second component that fails its health check sends the node back to both old versions and trips the breaker', async () => {
    const created = await api.post<RolloutDetail>('/api/v1/rollouts', spec('targets-broken', '2.1.0', '2.0.1', { circuitBreaker: { maxConsecutiveFailures: 1 } }));
    const stopped = await waitEnd(created.id);
    expect(stopped.status).toBe('awaiting_decision');
    const failed = stopped.tasks.filter((t) => t.state === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.last_error).toMatch(/sidecar health: port 9000 refused/);
    const host = failed[0]?.hostname as string;
    await waitFor(
      `${host} back on web and sidecar 1.0.0`,
      async () => ((await versions()).find(([h]) => h === host)?.slice(1).join() === '1.0.0,1.0.0' ? true : undefined),
      60_000,
    ).catch(async (error: Error) => {
      const log = (await events(created.id)).map((e) => `${e.kind} ${JSON.stringify(e.data)}`);
      throw new Error(`${error.message}; versions ${JSON.stringify(await versions())}; events ${log.join('\n')}`);
    });
    // The other nodes never started.
    expect(stopped.tasks.filter((t) => t.state === 'pending').map((t) => t.hostname)).toHaveLength(2);
    expect(await versions()).toEqual(HOSTS.map((h) => [h, '1.0.0', '1.0.0']));
    await api.post(`/api/v1/rollouts/${created.id}/abort`);
  }, 300_000);
});
