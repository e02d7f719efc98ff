import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DesiredState, InstallReport } from '../../src/domain/protocol.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { generateSigningKeyPair, keyId, publicKeyFromPem, signArtifact, verifyArtifact } from '../../src/signing.js';
import type { ArtifactView } from '../../src/store/artifacts.js';
import type { EventRow } from '../../src/store/events.js';
import type { NodeView } from '../../src/store/nodes.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe(`operator artifacts and component versions on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  const keys = generateSigningKeyPair();

  async function publish(meta: { component: string; version: string; kind?: string; disruptive?: boolean }, bytes: Buffer, sign: { version?: string } | false = {}) {
    const kind = meta.kind ?? 'binary';
    const query = new URLSearchParams({ component: meta.component, version: meta.version, kind });
    if (meta.disruptive) query.set('disruptive', 'true');
    if (sign !== false) {
      query.set('signature', signArtifact(keys.privatePem, { component: meta.component, version: sign.version ?? meta.version, kind, sha256: sha256(bytes) }));
      query.set('public_key', keys.publicPem);
    }
    const response = await fetch(`${op.url}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
    const text = await response.text();
    return { status: response.status, body: JSON.parse(text) as ArtifactView, text, headers: response.headers };
  }
  const count = async (sql: string) => (await t.db.query<{ n: number }>(sql))[0]?.n;
  const events = async (prefix: string) => api.ok<EventRow[]>(`/api/v1/events?after=0&kind_prefix=${prefix}`);

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('publishes a signed artifact, is idempotent for the same bytes and refuses other bytes for the same version', async () => {
    const bytes = randomBytes(300_000);
    const created = await publish({ component: 'node-agent', version: '2.0.0', kind: 'agent' }, bytes);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ component: 'node-agent', version: '2.0.0', kind: 'agent', sha256: sha256(bytes), size: 300_000, lifecycle: 'draft', disruptive: false });
    expect(created.body.key_id).toBe(keyId(publicKeyFromPem(keys.publicPem)));
    const claim = { component: 'node-agent', version: '2.0.0', kind: 'agent', sha256: sha256(bytes) };
    expect(verifyArtifact([publicKeyFromPem(keys.publicPem)], created.body.signature as string, claim)).toBe(true);

    const again = await publish({ component: 'node-agent', version: '2.0.0', kind: 'agent' }, bytes);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(created.body.id);

    const blobsBefore = await count('SELECT count(*)::int AS n FROM blob_chunks');
    const other = await publish({ component: 'node-agent', version: '2.0.0', kind: 'agent' }, randomBytes(1000));
    const error = expectApiError(other, 409, 'ARTIFACT_VERSION_EXISTS');
    expect(error.details).toMatchObject({ existing_sha256: sha256(bytes) });
    expect(await count('SELECT count(*)::int AS n FROM blob_chunks')).toBe(blobsBefore);
    expect(await count('SELECT count(*)::int AS n FROM artifacts')).toBe(1);
    expect((await events('artifact.published')).length).toBe(1);

    const blob = await fetch(`${op.url}/api/v1/artifacts/${created.body.id}/blob`);
    expect(blob.headers.get('content-length')).toBe('300000');
    expect(Buffer.from(await blob.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('refuses bad uploads with catalog errors and stores nothing', async () => {
    const bytes = randomBytes(1000);
    const before = { artifacts: await count('SELECT count(*)::int AS n FROM artifacts'), chunks: await count('SELECT count(*)::int AS n FROM blob_chunks') };
    expectApiError(await publish({ component: 'nginx', version: '1.26' }, bytes), 400, 'VALIDATION_FAILED');
    expectApiError(await publish({ component: 'Nginx!', version: '1.26.0' }, bytes), 400, 'VALIDATION_FAILED');
    expectApiError(await publish({ component: 'nginx', version: '1.26.0', kind: 'rpm' }, bytes), 400, 'VALIDATION_FAILED');
    // Signed for another version: the signature must cover what is published.
    expectApiError(await publish({ component: 'nginx', version: '1.26.0' }, bytes, { version: '1.26.1' }), 400, 'SIGNATURE_INVALID');
    expectApiError(await publish({ component: 'nginx', version: '1.26.0' }, Buffer.alloc(0), false), 400, 'ARTIFACT_EMPTY');
    const mismatch = await fetch(`${op.url}/api/v1/artifacts?component=nginx&version=1.26.0&kind=binary&sha256=${'0'.repeat(64)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(bytes),
    });
    expectApiError({ status: mismatch.status, body: JSON.parse(await mismatch.text()), text: '', headers: mismatch.headers }, 400, 'DIGEST_MISMATCH');
    expectApiError(await api.post('/api/v1/artifacts?component=nginx&version=1.26.0&kind=binary', { file: 'x' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectApiError(await api.post(`/api/v1/artifacts?component=nginx&version=1.26.0&kind=binary&signature=${'A'.repeat(86)}==`, undefined), 400, 'VALIDATION_FAILED');
    expect(await count('SELECT count(*)::int AS n FROM artifacts')).toBe(before.artifacts);
    expect(await count('SELECT count(*)::int AS n FROM blob_chunks')).toBe(before.chunks);
  });

  it('walks the lifecycle draft → blessed → live → archived and refuses other moves with 409', async () => {
    const unsigned = await publish({ component: 'tool', version: '0.1.0' }, randomBytes(10), false);
    expect(unsigned.status).toBe(201);
    expectApiError(await api.post(`/api/v1/artifacts/${unsigned.body.id}/bless`), 409, 'ARTIFACT_UNSIGNED');

    const v1 = (await publish({ component: 'tool', version: '1.0.0' }, randomBytes(10))).body;
    const v2 = (await publish({ component: 'tool', version: '2.0.0' }, randomBytes(10))).body;
    const promoteDraft = expectApiError(await api.post(`/api/v1/artifacts/${v1.id}/promote`), 409, 'INVALID_LIFECYCLE_TRANSITION');
    expect(promoteDraft.details).toMatchObject({ lifecycle: 'draft', allowed_from: ['blessed'] });
    for (const [id, action, lifecycle] of [
      [v1.id, 'bless', 'blessed'],
      [v1.id, 'bless', 'blessed'],
      [v1.id, 'promote', 'live'],
      [v2.id, 'bless', 'blessed'],
      [v2.id, 'promote', 'live'],
    ] as const) {
      const response = await api.post<ArtifactView>(`/api/v1/artifacts/${id}/${action}`);
      expect([response.status, response.body.lifecycle]).toEqual([200, lifecycle]);
    }
    expect((await api.ok<ArtifactView>(`/api/v1/artifacts/${v1.id}`)).lifecycle).toBe('blessed');
    expect((await api.ok<ArtifactView[]>('/api/v1/artifacts?component=tool')).map((a) => [a.version, a.lifecycle])).toEqual([
      ['0.1.0', 'draft'],
      ['1.0.0', 'blessed'],
      ['2.0.0', 'live'],
    ]);
    expect((await api.post<ArtifactView>(`/api/v1/artifacts/${v1.id}/archive`)).body.lifecycle).toBe('archived');
    expectApiError(await api.post(`/api/v1/artifacts/${v1.id}/bless`), 409, 'INVALID_LIFECYCLE_TRANSITION');
    expectApiError(await api.get('/api/v1/artifacts/nope'), 404, 'ARTIFACT_NOT_FOUND');
    expect((await events('artifact.')).map((e) => e.kind)).toEqual(expect.arrayContaining(['artifact.blessed', 'artifact.promoted', 'artifact.demoted', 'artifact.archived']));
  });

  it('sets a node component version, refuses a disruptive one on an undrained node, and wakes the agent', async () => {
    const node = await FakeNode.register(api, { hostname: 'sv-1' });
    await node.heartbeat();
    const hv = (await publish({ component: 'hypervisor', version: '2.0.0', disruptive: true }, randomBytes(5000))).body;
    expect((await api.post('/api/v1/deployments', { name: 'sv-app', replicas: 1, workload: { command: 'sleep' }, node_selector: { hostname: 'sv-1' } })).status).toBe(201);
    await waitFor('the instance placed', async () => (await api.ok<NodeView>(`/api/v1/nodes/${node.id}`)).active_instances === 1);

    const put = (component: string, body: unknown) => api.request<Record<string, unknown>>('PUT', `/api/v1/nodes/sv-1/components/${component}`, body);
    expectApiError(await put('hypervisor', { version: '9.9.9' }), 404, 'ARTIFACT_NOT_FOUND');
    expectApiError(await put('hypervisor', { version: 'latest' }), 400, 'VALIDATION_FAILED');
    expectApiError(await put('hypervisor', { version: '2.0.0', bogus: 1 }), 400, 'VALIDATION_FAILED');
    expectApiError(await api.request('PUT', '/api/v1/nodes/nowhere/components/hypervisor', { version: '2.0.0' }), 404, 'NODE_NOT_FOUND');
    const refused = expectApiError(await put('hypervisor', { version: '2.0.0' }), 409, 'NODE_NOT_DRAINED');
    expect(refused.message).toMatch(/drain the node first/);
    expect(await count(`SELECT count(*)::int AS n FROM node_components WHERE node_id = '${node.id}'`)).toBe(0);
    await node.heartbeat();
    const generation = node.generation;

    // A long-poll waiting for a change is answered at once.
    const poll = api.get<DesiredState>(`/api/v1/agent/desired?node_id=${node.id}&after=${generation}&wait=20`);
    const set = await put('hypervisor', { version: '2.0.0', force: true });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ component: 'hypervisor', version: '2.0.0', artifact_id: hv.id, force: true, rollback: false });
    const woken = await poll;
    expect(woken.body.generation).toBeGreaterThan(generation);
    expect(woken.body.components.hypervisor).toEqual({
      version: '2.0.0',
      artifact_id: hv.id,
      kind: 'binary',
      sha256: hv.sha256,
      size: 5000,
      signature: hv.signature,
      url: `/api/v1/agent/artifacts/${hv.id}/blob?node_id=${node.id}`,
      rollback: false,
      disruptive: true,
      request_id: expect.stringMatching(/^\d{20}$/),
      // The version a rollback would return to: never pruned by the agent (none before the first).
      previous_version: null,
    });
    expect((await node.heartbeat()).components.hypervisor?.sha256).toBe(hv.sha256);
    expect((await events('node.component_version_set')).map((e) => e.data)).toEqual([expect.objectContaining({ component: 'hypervisor', version: '2.0.0', force: true })]);

    // Setting the same again changes nothing; a rollback is marked only when asked for.
    await put('hypervisor', { version: '2.0.0', force: true });
    expect((await events('node.component_version_set')).length).toBe(1);
    const v1 = (await publish({ component: 'hypervisor', version: '1.0.0', disruptive: true }, randomBytes(10))).body;
    expect((await put('hypervisor', { version: '1.0.0', force: true, rollback: true })).body).toMatchObject({ rollback: true, artifact_id: v1.id });
    expect((await node.heartbeat()).components.hypervisor).toMatchObject({ version: '1.0.0', rollback: true });

    // An archived version cannot be set.
    const old = (await publish({ component: 'hypervisor', version: '0.9.0' }, randomBytes(10))).body;
    await api.post(`/api/v1/artifacts/${old.id}/archive`);
    expectApiError(await put('hypervisor', { version: '0.9.0', force: true }), 409, 'ARTIFACT_ARCHIVED');
  });

  it('refuses to archive a version a node runs or would roll back to, listing the nodes', async () => {
    const a = await FakeNode.register(api, { hostname: 'ar-1' });
    const b = await FakeNode.register(api, { hostname: 'ar-2' });
    const v1 = (await publish({ component: 'os-image', version: '1.0.0' }, randomBytes(10))).body;
    const v2 = (await publish({ component: 'os-image', version: '2.0.0' }, randomBytes(10))).body;
    // ar-1 reports it runs 1.0.0; ar-2 runs 1.0.0 and is then pointed at 2.0.0 (1.0.0 is its way back).
    for (const node of [a, b]) {
      await api.post('/api/v1/agent/heartbeat', { node_id: node.id, agent_version: 'test', protocol_version: 1, components: { 'os-image': '1.0.0' }, instances: [], generation: 0 });
    }
    await api.request('PUT', '/api/v1/nodes/ar-2/components/os-image', { version: '2.0.0' });
    const refused = expectApiError(await api.post(`/api/v1/artifacts/${v1.id}/archive`), 409, 'ARTIFACT_IN_USE');
    expect(refused.details.nodes).toEqual([
      { node_id: a.id, hostname: 'ar-1', reasons: ['runs'] },
      { node_id: b.id, hostname: 'ar-2', reasons: ['runs', 'rollback'] },
    ]);
    const wanted = expectApiError(await api.post(`/api/v1/artifacts/${v2.id}/archive`), 409, 'ARTIFACT_IN_USE');
    expect(wanted.details.nodes).toEqual([{ node_id: b.id, hostname: 'ar-2', reasons: ['desired'] }]);
    expect((await api.ok<ArtifactView>(`/api/v1/artifacts/${v1.id}`)).lifecycle).toBe('draft');
  });

  it('stores install reports from heartbeats, shows them on the node and writes one event per phase change', async () => {
    const node = await FakeNode.register(api, { hostname: 'in-1' });
    const send = async (phase: InstallReport['phase'], reason?: string) => {
      const install: InstallReport = { component: 'nginx', version: '1.26.0', previous_version: '1.24.0', phase, updated_at: new Date().toISOString(), ...(reason ? { reason } : {}) };
      const response = await api.post('/api/v1/agent/heartbeat', { node_id: node.id, agent_version: 'test', protocol_version: 1, components: {}, instances: [], installs: [install], generation: 0 });
      expect(response.status).toBe(200);
    };
    for (const phase of ['downloading', 'downloading', 'verifying', 'installing', 'assessing', 'assessing'] as const) await send(phase);
    await send('reverted', 'health check failed 3 times');
    await send('reverted', 'health check failed 3 times');
    await send('downloading');
    await send('done');
    await send('done');
    const mine = (await api.ok<EventRow[]>(`/api/v1/events?after=0&kind_prefix=node.&node_id=${node.id}`)).filter((e) => e.kind !== 'node.registered');
    expect(mine.map((e) => [e.kind, e.data.phase])).toEqual([
      ['node.install_started', 'downloading'],
      ['node.reverted', 'reverted'],
      ['node.install_started', 'downloading'],
      ['node.install_completed', 'done'],
    ]);
    expect(mine[1]?.data).toMatchObject({ component: 'nginx', version: '1.26.0', previous_version: '1.24.0', reason: 'health check failed 3 times' });
    const view = await api.ok<NodeView>(`/api/v1/nodes/${node.id}`);
    expect(view.installs).toEqual([expect.objectContaining({ component: 'nginx', version: '1.26.0', previous_version: '1.24.0', phase: 'done', reason: null })]);
    const bad = await api.post('/api/v1/agent/heartbeat', { node_id: node.id, agent_version: 'test', protocol_version: 1, components: {}, instances: [], installs: [{ component: 'nginx', phase: 'exploded' }], generation: 0 });
    expectApiError(bad, 400, 'VALIDATION_FAILED');
  });
});
