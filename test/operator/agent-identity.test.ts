// One leaked agent token cannot take over other nodes (DESIGN.md §9), attacked on a real
// operator with tokens on: every refused attempt leaves the node's row exactly as it was.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DesiredState, RegisterResponse } from '../../src/domain/protocol.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, expectApiError } from '../support/operator.js';
import { startTestOperator } from '../support/operator.js';

const TOKENS = {
  viewer: 'viewer-token-0123456789',
  operator: 'operator-token-0123456789',
  approver: 'approver-token-0123456789',
  admin: 'admin-token-0123456789',
  agent: 'agent-token-0123456789',
} as const;
const CREDENTIAL = 'x-drydock-node-credential';

const registration = (hostname: string, extra: Record<string, unknown> = {}) => ({
  hostname,
  region: 'us-east',
  role: 'worker',
  max_instances: 4,
  labels: { disk: 'ssd' },
  agent_version: '1.0.0',
  protocol_version: 1,
  ...extra,
});

describe(`agent identity: registration needs the node's credential on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let anonymous: ApiClient;
  const as = (role: keyof typeof TOKENS) => anonymous.withToken(TOKENS[role]);
  const victim = { id: '', credential: '' };
  const other = { id: '', credential: '' };

  /** Everything stored about the node, credential digest included. */
  const nodeRow = async (id: string) => (await t.db.query('SELECT * FROM nodes WHERE id = $1', [id]))[0];
  const eventsOf = (kind: string) => t.db.query<{ actor: string; data: Record<string, unknown> }>('SELECT actor, data FROM events WHERE kind = $1 ORDER BY id', [kind]);
  const heartbeat = (nodeId: string, credential: string, role: keyof typeof TOKENS = 'agent') =>
    as(role).post<DesiredState>(
      '/api/v1/agent/heartbeat',
      { node_id: nodeId, agent_version: '1.0.0', protocol_version: 1, components: { 'node-agent': '1.0.0', nginx: '1.26.0' }, instances: [], generation: 0 },
      { headers: { [CREDENTIAL]: credential } },
    );
  const register = async (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    as('agent').post<RegisterResponse>('/api/v1/agent/register', body, { headers });

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-identity-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-bot`, token, role })) }));
    // A long grace: no node turns `down` on its own, so a row that changed was changed by a call.
    op = await startTestOperator(t.db, { tokensFile, heartbeatGraceMs: 3_600_000 });
    anonymous = new ApiClient(op.url);
    for (const [node, hostname] of [[victim, 'victim-1'], [other, 'other-1']] as const) {
      const reply = await register(registration(hostname));
      expect(reply.status).toBe(200);
      node.id = reply.body.node_id;
      node.credential = reply.body.node_credential;
      expect((await heartbeat(node.id, node.credential)).status).toBe(200);
    }
    expect(await eventsOf('node.registered')).toHaveLength(2);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a takeover with the agent token alone, or a wrong or foreign credential: 403, row unchanged, attempt recorded', async () => {
    const before = await nodeRow(victim.id);
    expect(before).toMatchObject({ region: 'us-east', role: 'worker', labels: { disk: 'ssd' }, max_instances: 4, components: { nginx: '1.26.0' } });
    const takeover = registration('victim-1', { region: 'eu-evil', role: 'control-plane', labels: { owned: 'yes' }, max_instances: 999, node_id: victim.id });
    const attempts: Record<string, string>[] = [{}, { [CREDENTIAL]: 'not-the-credential-at-all-0123456789' }, { [CREDENTIAL]: other.credential }];
    for (const headers of attempts) {
      const reply = await register(takeover, headers);
      const error = expectApiError(reply, 403, 'NODE_CREDENTIAL_REQUIRED');
      expect(error.message).toMatch(/drydock node re-enroll victim-1/);
      expect(reply.text).not.toContain('node_credential');
      expect(await nodeRow(victim.id)).toEqual(before);
    }
    // The real agent is unaffected: its credential still reports, the forged versions never landed.
    expect((await heartbeat(victim.id, victim.credential)).status).toBe(200);
    expect(await t.db.query(`SELECT id FROM nodes WHERE region = 'eu-evil'`)).toEqual([]);
    const refused = await eventsOf('node.reregistration_refused');
    expect(refused.map((e) => [e.actor, e.data.reason])).toEqual([
      ['agent-bot', 'no node credential presented'],
      ['agent-bot', 'wrong node credential'],
      ['agent-bot', 'wrong node credential'],
    ]);
    expect(refused[0]?.data.claimed).toMatchObject({ region: 'eu-evil', max_instances: 999 });
    expect(await eventsOf('node.reregistered')).toEqual([]);
  });

  it("re-registers with the node's own credential: same id, credential kept, changes recorded", async () => {
    const reply = await register(registration('victim-1', { region: 'us-west', labels: { disk: 'nvme' }, max_instances: 6 }), { [CREDENTIAL]: victim.credential });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ node_id: victim.id, node_credential: victim.credential });
    expect(await nodeRow(victim.id)).toMatchObject({ region: 'us-west', labels: { disk: 'nvme' }, max_instances: 6, role: 'worker' });
    const [event] = await eventsOf('node.reregistered');
    expect(event).toMatchObject({
      actor: 'agent-bot',
      data: {
        proof: 'credential',
        credential: 'kept',
        changes: { region: { from: 'us-east', to: 'us-west' }, labels: { from: { disk: 'ssd' }, to: { disk: 'nvme' } }, max_instances: { from: 4, to: 6 } },
      },
    });
    expect(Object.keys(event?.data.changes as object).sort()).toEqual(['labels', 'max_instances', 'region']);
    expect((await heartbeat(victim.id, victim.credential)).status).toBe(200);
  });

  it('lets only an admin re-enroll; the next registration then enrolls again with a new credential', async () => {
    for (const role of ['viewer', 'operator', 'approver', 'agent'] as const) {
      expectApiError(await as(role).post(`/api/v1/nodes/${victim.id}/re-enroll`, { reason: 'nope' }), 403, 'FORBIDDEN');
    }
    expect(await eventsOf('node.re_enrolled')).toEqual([]);
    expectApiError(await as('admin').post(`/api/v1/nodes/${victim.id}/re-enroll`, { reason: 'x'.repeat(501) }), 400, 'VALIDATION_FAILED');
    expectApiError(await as('admin').post(`/api/v1/nodes/${victim.id}/re-enroll`, { reason: 'a\u0000b' }), 400, 'VALIDATION_FAILED');
    expectApiError(await as('admin').post('/api/v1/nodes/no-such-node/re-enroll', {}), 404, 'NODE_NOT_FOUND');
    expect(await nodeRow(victim.id)).toMatchObject({ credential_hash: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const reEnrolled = await as('admin').post<{ id: string; hostname: string }>('/api/v1/nodes/victim-1/re-enroll', { reason: 'data dir lost' });
    expect(reEnrolled.status).toBe(200);
    expect(reEnrolled.body).toMatchObject({ id: victim.id, hostname: 'victim-1' });
    expect(await eventsOf('node.re_enrolled')).toEqual([{ actor: 'admin-bot', data: { hostname: 'victim-1', reason: 'data dir lost' } }]);
    expect(await nodeRow(victim.id)).toMatchObject({ credential_hash: null });
    // The old credential is void at once: whoever held it cannot report any more.
    expectApiError(await heartbeat(victim.id, victim.credential), 403, 'NODE_CREDENTIAL_INVALID');

    const enrolled = await register(registration('victim-1', { region: 'us-west', labels: { disk: 'nvme' }, max_instances: 6 }));
    expect(enrolled.status).toBe(200);
    expect(enrolled.body.node_id).toBe(victim.id);
    expect(enrolled.body.node_credential).not.toBe(victim.credential);
    const events = await eventsOf('node.reregistered');
    expect(events.at(-1)?.data).toMatchObject({ proof: 're-enrolled', credential: 'issued', changes: {} });
    victim.credential = enrolled.body.node_credential;
    expect((await heartbeat(victim.id, victim.credential)).status).toBe(200);
    // Enrollment closes once used: the same call again is a takeover attempt.
    expectApiError(await register(registration('victim-1')), 403, 'NODE_CREDENTIAL_REQUIRED');
  });

  it("refuses a new hostname claiming another node's id: 409, nothing created or changed", async () => {
    const before = await nodeRow(victim.id);
    const events = await t.db.query('SELECT count(*)::int AS n FROM events');
    const reply = await register(registration('thief-1', { node_id: victim.id }), { [CREDENTIAL]: victim.credential });
    const error = expectApiError(reply, 409, 'NODE_ID_TAKEN');
    expect(error.details).toEqual({ node_id: victim.id, hostname: 'thief-1' });
    expect(await t.db.query(`SELECT id FROM nodes WHERE hostname = 'thief-1'`)).toEqual([]);
    expect(await nodeRow(victim.id)).toEqual(before);
    expect(await t.db.query('SELECT count(*)::int AS n FROM events')).toEqual(events);
    // A new hostname with an id nobody holds (an agent whose operator lost its database) keeps it.
    const remembered = await register(registration('remembered-1', { node_id: 'remembered-id-1' }));
    expect(remembered.body.node_id).toBe('remembered-id-1');
  });

  it("refuses people's tokens on the gateway (admin included) and agent tokens off it", async () => {
    const nodes = await t.db.query('SELECT * FROM nodes ORDER BY id');
    for (const role of ['viewer', 'operator', 'approver', 'admin'] as const) {
      const attempts = [
        await as(role).post('/api/v1/agent/register', registration(`person-${role}`)),
        await heartbeat(victim.id, victim.credential, role),
        await as(role).get(`/api/v1/agent/desired?node_id=${victim.id}&wait=0`, { headers: { [CREDENTIAL]: victim.credential } }),
      ];
      for (const reply of attempts) expect(expectApiError(reply, 403, 'FORBIDDEN').details).toEqual({ needed: 'agent', role });
    }
    for (const path of ['/api/v1/nodes', `/api/v1/artifacts/any-id/blob`, `/api/v1/nodes/${victim.id}`]) {
      expect(expectApiError(await as('agent').get(path), 403, 'FORBIDDEN').details).toMatchObject({ role: 'agent' });
    }
    expect(await t.db.query('SELECT * FROM nodes ORDER BY id')).toEqual(nodes);
  });

  it("serves artifact bytes to an agent only through the gateway, with its node's credential, for its desired state", async () => {
    const bytes = Buffer.from('the nginx 1.27.0 binary, more or less');
    const published = await fetch(`${op.url}/api/v1/artifacts?component=nginx&version=1.27.0&kind=binary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.operator}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(published.status).toBe(201);
    const artifact = (await published.json()) as { id: string };
    const unrelated = await fetch(`${op.url}/api/v1/artifacts?component=redis&version=7.0.0&kind=binary`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.operator}`, 'content-type': 'application/octet-stream' },
      body: Buffer.from('redis'),
    });
    const redis = (await unrelated.json()) as { id: string };
    expect((await as('operator').request('PUT', `/api/v1/nodes/${victim.id}/components/nginx`, { version: '1.27.0' })).status).toBe(200);

    const desired = await heartbeat(victim.id, victim.credential);
    const url = desired.body.components?.nginx?.url ?? '';
    expect(url).toBe(`/api/v1/agent/artifacts/${artifact.id}/blob?node_id=${victim.id}`);
    const download = await fetch(`${op.url}${url}`, { headers: { authorization: `Bearer ${TOKENS.agent}`, [CREDENTIAL]: victim.credential } });
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(bytes);

    // No credential, another node's, or an artifact this node is not asked to install: refused.
    expectApiError(await as('agent').get(url), 403, 'NODE_CREDENTIAL_INVALID');
    expectApiError(await as('agent').get(url, { headers: { [CREDENTIAL]: other.credential } }), 403, 'NODE_CREDENTIAL_INVALID');
    const otherUrl = `/api/v1/agent/artifacts/${artifact.id}/blob?node_id=${other.id}`;
    expectApiError(await as('agent').get(otherUrl, { headers: { [CREDENTIAL]: other.credential } }), 403, 'ARTIFACT_NOT_DESIRED');
    const redisUrl = `/api/v1/agent/artifacts/${redis.id}/blob?node_id=${victim.id}`;
    expectApiError(await as('agent').get(redisUrl, { headers: { [CREDENTIAL]: victim.credential } }), 403, 'ARTIFACT_NOT_DESIRED');
    expectApiError(await as('viewer').get(url, { headers: { [CREDENTIAL]: victim.credential } }), 403, 'FORBIDDEN');
    expectApiError(await as('agent').get(`/api/v1/agent/artifacts/${artifact.id}/blob?node_id=%00`), 400, 'VALIDATION_FAILED');
    expectApiError(await as('agent').get(`/api/v1/agent/artifacts/${artifact.id}/blob`), 400, 'VALIDATION_FAILED');
    // People keep their own door.
    const viewer = await fetch(`${op.url}/api/v1/artifacts/${artifact.id}/blob`, { headers: { authorization: `Bearer ${TOKENS.viewer}` } });
    expect(viewer.status).toBe(200);
    expect(Buffer.from(await viewer.arrayBuffer())).toEqual(bytes);
  });
});
