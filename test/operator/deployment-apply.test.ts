// `drydock deploy -f` applies (PUT /api/v1/deployments/:name: created, configured, unchanged)
// and `drydock delete deployment` (DELETE /api/v1/deployments/:name) stops the instances through
// the fleet reconciler, against a real operator with tokens on and agents that follow their
// desired state.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import type { DeploymentView } from '../../src/store/deployments.js';
import type { InstanceView } from '../../src/store/instances.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const TOKENS = { viewer: 'viewer-token-0123456789', operator: 'operator-token-0123456789', agent: 'agent-token-0123456789' } as const;
const WORKLOAD = { command: 'demo-app', args: ['--port', '$PORT'], env: { GREETING: 'hi' }, health_path: '/healthz' };

interface Applied {
  result: 'created' | 'configured' | 'unchanged';
  changed: string[];
  deployment: DeploymentView & { health: string };
}
interface EventRow {
  id: number;
  kind: string;
  actor: string;
  instance_id: string | null;
  data: Record<string, unknown>;
}

describe(`deployments applied and deleted on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let anonymous: ApiClient;
  const as = (who: keyof typeof TOKENS) => anonymous.withToken(TOKENS[who]);
  const fleet: FakeNode[] = [];
  const put = (name: string, body: unknown, who: keyof typeof TOKENS = 'operator') => as(who).request<Applied>('PUT', `/api/v1/deployments/${name}`, body);
  const del = (name: string, who: keyof typeof TOKENS = 'operator') => as(who).request<DeploymentView>('DELETE', `/api/v1/deployments/${name}`);
  const running = async (name: string) =>
    (await as('viewer').ok<InstanceView[]>(`/api/v1/instances?deployment=${name}`)).filter((i) => i.desired === 'running');
  const events = async (prefix: string) => as('viewer').ok<EventRow[]>(`/api/v1/events?after=0&kind_prefix=${prefix}&limit=1000`);
  /** Every row of the tables an apply or a delete could touch: equal digests, nothing changed. */
  const digest = async () =>
    JSON.stringify([
      await t.db.query('SELECT id, name, replicas, min_available, workload, node_selector, deleting_since FROM deployments ORDER BY id'),
      await t.db.query('SELECT id, deployment_id, node_id, desired FROM instances ORDER BY id'),
      await t.db.query("SELECT count(*)::int AS n FROM events WHERE kind LIKE 'deployment.%'"),
    ]);

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-apply-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: Object.entries(TOKENS).map(([role, token]) => ({ name: `${role}-bot`, token, role })) }));
    op = await startTestOperator(t.db, { tokensFile, heartbeatGraceMs: 60_000 });
    anonymous = new ApiClient(op.url);
    for (const hostname of ['ap-1', 'ap-2', 'ap-3']) {
      const node = await FakeNode.register(as('agent'), { hostname, max_instances: 4 });
      node.followDesiredInstances = true;
      node.startHeartbeats(100);
      fleet.push(node);
    }
  });
  afterAll(async () => {
    for (const node of fleet) await node.stopHeartbeats();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a deployment that does not exist (201 created) and places its replicas', async () => {
    const created = await put('web', { name: 'web', replicas: 3, min_available: 1, workload: WORKLOAD });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ result: 'created', changed: [], deployment: { name: 'web', replicas: 3, min_available: 1, workload: WORKLOAD, deleting: false } });
    await waitFor('three healthy instances', async () => (await running('web')).filter((i) => i.published).length === 3);
    expect((await events('deployment.')).map((e) => e.kind)).toEqual(['deployment.created']);
  });

  it('an unchanged spec is "unchanged" and writes nothing, whatever the key order or the default driver', async () => {
    const before = await digest();
    const generations = await t.db.query('SELECT id, generation FROM nodes ORDER BY id');
    const same = await put('web', { workload: { health_path: '/healthz', env: { GREETING: 'hi' }, args: ['--port', '$PORT'], command: 'demo-app', driver: 'process' }, min_available: 1, replicas: 3, name: 'web' });
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ result: 'unchanged', changed: [] });
    expect(await digest()).toBe(before);
    expect(await t.db.query('SELECT id, generation FROM nodes ORDER BY id')).toEqual(generations);
  });

  it('scales down in place (configured): the surplus instances are withdrawn and stopped, their rows removed', async () => {
    const before = (await running('web')).map((i) => i.id);
    const scaled = await put('web', { name: 'web', replicas: 1, min_available: 1, workload: WORKLOAD });
    expect(scaled.status).toBe(200);
    expect(scaled.body).toMatchObject({ result: 'configured', changed: ['replicas'], deployment: { replicas: 1 } });
    const left = await waitFor('one instance left, the others removed', async () => {
      const all = await as('viewer').ok<InstanceView[]>('/api/v1/instances?deployment=web');
      return all.length === 1 && all[0]!.published && all;
    });
    expect(before).toContain(left[0]!.id);
    const updated = (await events('deployment.updated')).at(-1);
    expect(updated).toMatchObject({ actor: 'operator-bot', data: { name: 'web', changes: { replicas: { from: 3, to: 1 } } } });
    const withdrawn = (await events('instance.withdrawn')).map((e) => e.instance_id).sort();
    expect(withdrawn).toEqual(before.filter((id) => id !== left[0]!.id).sort());
  });

  it('scales up again (configured) and min_available changes in place', async () => {
    const scaled = await put('web', { name: 'web', replicas: 2, min_available: 2, workload: WORKLOAD });
    expect(scaled.body).toMatchObject({ result: 'configured', changed: ['replicas', 'min_available'] });
    await waitFor('two healthy instances', async () => (await running('web')).filter((i) => i.published).length === 2);
  });

  it('refuses a workload or selector change while instances run (409 DEPLOYMENT_FIELD_IMMUTABLE), changing nothing', async () => {
    const before = await digest();
    const refused = await put('web', { name: 'web', replicas: 5, min_available: 2, workload: { ...WORKLOAD, args: ['--v2'] } });
    const error = expectApiError(refused, 409, 'DEPLOYMENT_FIELD_IMMUTABLE');
    expect(error.details).toMatchObject({ name: 'web', fields: ['workload'] });
    expectApiError(await put('web', { name: 'web', replicas: 2, min_available: 2, workload: WORKLOAD, node_selector: { region: 'eu-west' } }), 409, 'DEPLOYMENT_FIELD_IMMUTABLE');
    expect(await digest()).toBe(before);
  });

  it('refuses invalid specs with 400 and a stable code, changing nothing', async () => {
    const before = await digest();
    const bad: [string, unknown, string][] = [
      ['web', { name: 'web', replicas: -1, workload: WORKLOAD }, 'VALIDATION_FAILED'],
      ['web', { name: 'web', replicas: 1, min_available: 2, workload: WORKLOAD }, 'VALIDATION_FAILED'],
      ['web', { name: 'web', replicas: 1e9, workload: WORKLOAD }, 'VALIDATION_FAILED'],
      ['web', { name: 'web', replicas: 1, workload: { command: 'x\u0000y' }, surprise: true }, 'VALIDATION_FAILED'],
      ['web', { name: 'api', replicas: 1, workload: WORKLOAD }, 'DEPLOYMENT_NAME_MISMATCH'],
      ['Bad_Name', { name: 'Bad_Name', replicas: 1, workload: WORKLOAD }, 'VALIDATION_FAILED'],
    ];
    for (const [name, body, code] of bad) expectApiError(await put(name, body), 400, code);
    expectApiError(await as('operator').request('PUT', '/api/v1/deployments/web', undefined, { raw: '{"name": "web",', contentType: 'application/json' }), 400, 'MALFORMED_JSON');
    expect(await digest()).toBe(before);
  });

  it('refuses viewers (403) on apply and delete, and nobody changes anything without a token (401)', async () => {
    const before = await digest();
    expectApiError(await put('web', { name: 'web', replicas: 3, workload: WORKLOAD }, 'viewer'), 403, 'FORBIDDEN');
    expectApiError(await put('fresh', { name: 'fresh', replicas: 1, workload: WORKLOAD }, 'viewer'), 403, 'FORBIDDEN');
    expectApiError(await del('web', 'viewer'), 403, 'FORBIDDEN');
    expectApiError(await anonymous.request('DELETE', '/api/v1/deployments/web'), 401, 'UNAUTHENTICATED');
    expect(await digest()).toBe(before);
  });

  it('deleting an unknown deployment is a 404 with its code, a malformed name a 400; nothing changes', async () => {
    const before = await digest();
    for (const name of ['no-such', 'WEB', 'web%20', 'web%2Fx']) expectApiError(await del(name), 404, 'DEPLOYMENT_NOT_FOUND');
    for (const name of ['x'.repeat(201), '%00']) expectApiError(await del(name), 400, 'VALIDATION_FAILED');
    expect(await digest()).toBe(before);
  });

  it('delete withdraws and stops every instance, then the deployment is gone and its name free again', async () => {
    const instances = (await running('web')).map((i) => i.id).sort();
    expect(instances).toHaveLength(2);
    const deleted = await del('web');
    expect(deleted.status).toBe(202);
    expect(deleted.body).toMatchObject({ name: 'web', deleting: true });
    // While its instances stop: applying it is refused, deleting it again is no change.
    const during = await put('web', { name: 'web', replicas: 2, min_available: 2, workload: WORKLOAD });
    if (during.status !== 201) expectApiError(during, 409, 'DEPLOYMENT_DELETING');
    else throw new Error('an apply brought a deleting deployment back');
    expect((await del('web')).status).toBe(202);

    await waitFor('the deployment to be gone', async () => (await as('viewer').get('/api/v1/deployments/web')).status === 404);
    expect(await t.db.query('SELECT id FROM instances')).toEqual([]);
    const kinds = (await events('deployment.')).map((e) => e.kind);
    expect(kinds.filter((k) => k === 'deployment.deletion_requested')).toHaveLength(1);
    expect(kinds.at(-1)).toBe('deployment.deleted');
    const withdrawn = new Set((await events('instance.withdrawn')).map((e) => e.instance_id));
    for (const id of instances) expect(withdrawn.has(id)).toBe(true);

    const again = await put('web', { name: 'web', replicas: 1, workload: WORKLOAD });
    expect(again.status).toBe(201);
    expect(again.body.result).toBe('created');
    expect(again.body.deployment.id).not.toBe(deleted.body.id);
  });
});
