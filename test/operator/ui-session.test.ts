// Dashboard sessions against a real operator on loopback: a token is traded for an HttpOnly,
// SameSite=Strict cookie backed by a row in ui_sessions; cookie requests that change state need
// the session's CSRF token; logout and expiry end the session; bearer tokens work as before.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { FakeNode } from '../support/fake-node.js';
import { ApiClient, expectApiError, startTestOperator } from '../support/operator.js';

const TOKENS = { alice: 'alice-approver-token-0123456789', vera: 'vera-viewer-token-0123456789', agent: 'agent-token-0123456789' } as const;

describe(`dashboard sessions on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  let api: ApiClient;
  let nodeId: string;

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-session-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(
      tokensFile,
      stringify({ tokens: [{ name: 'alice', token: TOKENS.alice, role: 'approver' }, { name: 'vera', token: TOKENS.vera, role: 'viewer' }, { name: 'agents', token: TOKENS.agent, role: 'agent' }] }),
    );
    op = await startTestOperator(t.db, { tokensFile, heartbeatGraceMs: 3_600_000 });
    api = new ApiClient(op.url);
    nodeId = (await FakeNode.register(new ApiClient(op.url, TOKENS.agent), { hostname: 'session-1' })).id;
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const login = async (token: string) => {
    const response = await api.post<{ csrf_token: string; name: string; role: string; authenticated: boolean; expires_at: string }>('/api/v1/session', { token });
    const setCookie = response.headers.get('set-cookie') ?? '';
    const cookie = /drydock_session=([^;]*)/.exec(setCookie)?.[1] ?? '';
    return { response, setCookie, cookie: `drydock_session=${cookie}`, csrf: response.body.csrf_token };
  };
  const sessions = async () => (await t.db.query<{ principal: string; role: string }>('SELECT principal, role FROM ui_sessions ORDER BY principal')).map((r) => `${r.principal}:${r.role}`);
  const cordoned = async () => (await t.db.query<{ cordoned: boolean }>('SELECT cordoned FROM nodes WHERE id = $1', [nodeId]))[0]?.cordoned;

  it('login sets an HttpOnly, SameSite=Strict cookie and stores only a digest of it, with an expiry', async () => {
    const { response, setCookie, cookie, csrf } = await login(TOKENS.alice);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ authenticated: true, name: 'alice', role: 'approver', open: false });
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\//);
    expect(setCookie).toMatch(/Max-Age=28800/);
    expect(csrf).toMatch(/^[\w-]{40,}$/);
    const [row] = await t.db.query<{ id_sha256: string; hours: number }>(
      `SELECT id_sha256, round(extract(epoch FROM expires_at - created_at) / 3600)::int AS hours FROM ui_sessions WHERE principal = 'alice'`,
    );
    expect(row?.hours).toBe(8);
    expect(row?.id_sha256).not.toContain(cookie.split('=')[1]);
    const who = await api.get<{ name: string; csrf_token: string }>('/api/v1/session', { headers: { cookie } });
    expect(who.body).toMatchObject({ authenticated: true, name: 'alice', role: 'approver', csrf_token: csrf });
  });

  it('refuses an unknown token (401) and an agent token (403), storing no session', async () => {
    const before = await sessions();
    expectApiError((await login('not-a-token-0123456789')).response, 401, 'UNAUTHENTICATED');
    expectApiError((await login(TOKENS.agent)).response, 403, 'SESSION_FOR_PEOPLE_ONLY');
    expectApiError(await api.post('/api/v1/session', { token: TOKENS.alice, extra: 1 }), 400, 'VALIDATION_FAILED');
    expect(await sessions()).toEqual(before);
    expect((await api.get('/api/v1/session')).body).toMatchObject({ authenticated: false, name: null });
  });

  it('a cookie request reads; one that writes needs the CSRF token (403 CSRF_TOKEN_INVALID without it, nothing changes)', async () => {
    const { cookie, csrf } = await login(TOKENS.alice);
    expect((await api.get('/api/v1/nodes', { headers: { cookie } })).status).toBe(200);
    expectApiError(await api.post(`/api/v1/nodes/${nodeId}/cordon`, {}, { headers: { cookie } }), 403, 'CSRF_TOKEN_INVALID');
    expectApiError(await api.post(`/api/v1/nodes/${nodeId}/cordon`, {}, { headers: { cookie, 'x-csrf-token': 'wrong-token' } }), 403, 'CSRF_TOKEN_INVALID');
    expect(await cordoned()).toBe(false);
    const ok = await api.post(`/api/v1/nodes/${nodeId}/cordon`, {}, { headers: { cookie, 'x-csrf-token': csrf } });
    expect(ok.status).toBe(200);
    expect(await cordoned()).toBe(true);
    // Another session's CSRF token does not fit this one.
    const other = await login(TOKENS.alice);
    expectApiError(await api.post(`/api/v1/nodes/${nodeId}/enable`, {}, { headers: { cookie, 'x-csrf-token': other.csrf } }), 403, 'CSRF_TOKEN_INVALID');
    expect((await api.post(`/api/v1/nodes/${nodeId}/enable`, {}, { headers: { cookie, 'x-csrf-token': csrf } })).status).toBe(200);
    expect(await cordoned()).toBe(false);
  });

  it('a viewer session is refused writes by role (403 FORBIDDEN) even with its CSRF token', async () => {
    const { cookie, csrf } = await login(TOKENS.vera);
    expectApiError(await api.post(`/api/v1/nodes/${nodeId}/cordon`, {}, { headers: { cookie, 'x-csrf-token': csrf } }), 403, 'FORBIDDEN');
    expect(await cordoned()).toBe(false);
  });

  it('logout ends the session: the row is gone and the cookie no longer works', async () => {
    const { cookie, csrf } = await login(TOKENS.vera);
    expectApiError(await api.request('DELETE', '/api/v1/session', undefined, { headers: { cookie } }), 403, 'CSRF_TOKEN_INVALID');
    const out = await api.request('DELETE', '/api/v1/session', undefined, { headers: { cookie, 'x-csrf-token': csrf } });
    expect(out.status).toBe(200);
    expect(out.body).toEqual({ logged_out: true });
    expect(out.headers.get('set-cookie')).toMatch(/drydock_session=;.*Max-Age=0/);
    expectApiError(await api.get('/api/v1/nodes', { headers: { cookie } }), 401, 'UNAUTHENTICATED');
  });

  it('an expired session is refused (401) and swept at the next login', async () => {
    const { cookie } = await login(TOKENS.vera);
    await t.db.query(`UPDATE ui_sessions SET expires_at = now() - interval '1 second'`);
    expectApiError(await api.get('/api/v1/nodes', { headers: { cookie } }), 401, 'UNAUTHENTICATED');
    await login(TOKENS.alice);
    expect(await sessions()).toEqual(['alice:approver']);
  });

  it('bearer tokens work unchanged and need no CSRF token', async () => {
    const bearer = api.withToken(TOKENS.alice);
    expect((await bearer.post(`/api/v1/nodes/${nodeId}/cordon`, {})).status).toBe(200);
    expect((await bearer.post(`/api/v1/nodes/${nodeId}/enable`, {})).status).toBe(200);
    expect((await bearer.get<{ name: string; csrf_token: null }>('/api/v1/session')).body).toMatchObject({ authenticated: true, name: 'alice', csrf_token: null });
    expectApiError(await api.get('/api/v1/nodes'), 401, 'UNAUTHENTICATED');
  });

  it('an operator without tokens needs no login: the session says open, as admin, and writes need no CSRF token', async () => {
    const open = await startTestOperator(t.db, { heartbeatGraceMs: 3_600_000 });
    try {
      const who = await new ApiClient(open.url).get('/api/v1/session');
      expect(who.body).toEqual({ authenticated: true, name: 'anonymous', role: 'admin', csrf_token: null, expires_at: null, open: true });
      expect((await new ApiClient(open.url).post('/api/v1/session', { token: 'anything-at-all-0123' })).body).toMatchObject({ open: true });
    } finally {
      await open.close();
    }
  });

  it('serves the dashboard at /ui/ (open, with a same-origin Content-Security-Policy) and redirects / there', async () => {
    const root = await fetch(`${op.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    // Relative, so it stays under a prefix (the edge's /d/drydock/): `/` → `/ui/`, `/ui` → `/ui/`.
    expect(root.headers.get('location')).toBe('ui/');
    const bare = await fetch(`${op.url}/ui`, { redirect: 'manual' });
    expect(bare.status).toBe(302);
    expect(new URL(bare.headers.get('location') as string, `${op.url}/ui`).pathname).toBe('/ui/');
    expect(new URL(root.headers.get('location') as string, `${op.url}/`).pathname).toBe('/ui/');
    const page = await fetch(`${op.url}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    // index.html is revalidated on every load; the assets it names carry their content's hash
    // and are kept by the browser for good.
    expect(page.headers.get('cache-control')).toBe('no-cache');
    // (undici's request, not fetch: fetch turns a request with If-None-Match into no-cache.)
    const first = await request(`${op.url}/ui/`, { headers: { 'accept-encoding': 'br' } });
    await first.body.dump();
    const etag = first.headers.etag;
    expect(etag).toBeTruthy();
    const again = await request(`${op.url}/ui/`, { headers: { 'if-none-match': etag as string, 'accept-encoding': 'br' } });
    await again.body.dump();
    expect(again.statusCode).toBe(304);
    const html = await page.text();
    const scriptName = /<script type="module" src="(app\.[0-9a-f]{12}\.js)">/.exec(html)?.[1];
    const styleName = /<link rel="stylesheet" href="(app\.[0-9a-f]{12}\.css)"/.exec(html)?.[1];
    expect(scriptName).toBeDefined();
    expect(styleName).toBeDefined();
    const script = await fetch(`${op.url}/ui/${scriptName}`, { headers: { 'accept-encoding': 'br' } });
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(script.headers.get('content-security-policy')).toContain("connect-src 'self'");
    // Pre-compressed by the build, sent to a client that accepts it (fetch decodes it again).
    expect(script.headers.get('content-encoding')).toBe('br');
    expect(await script.text()).toContain('drydock');
    const style = await fetch(`${op.url}/ui/${styleName}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(style.headers.get('content-encoding')).toBe('gzip');
    expect(style.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
  });
});
