// The dashboard in a real browser (Debian's Chromium through playwright-core) against a real
// operator process (the built bundle, embedded database, tokens on). Nodes are in-process agents
// heartbeating over real HTTP that install what they are told (test/support/installing-node.ts).
// Every page is checked for console errors and requests to other hosts, and photographed into
// test-artifacts/ui/.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { LocalFleet } from '../../src/demo/local-fleet.js';
import { generateSigningKeyPair, signArtifact } from '../../src/signing.js';
import { InstallingNode } from '../support/installing-node.js';
import { ApiClient, waitFor } from '../support/operator.js';
import { BUNDLE } from '../support/processes.js';
import { DashboardBrowser, type GuardedPage, logIn, screenshot } from './browser.js';

const TOKENS = {
  alice: 'alice-approver-token-0123456789',
  bob: 'bob-approver-token-0123456789',
  vera: 'vera-viewer-token-0123456789',
  agents: 'agents-token-0123456789',
} as const;
const REGIONS = ['us-east', 'eu-west', 'ap-south'] as const;
const HOSTS = REGIONS.flatMap((region) => [1, 2].map((i) => ({ hostname: `${region}-w${i}`, region })));

interface RolloutDetail {
  id: string;
  name: string;
  status: string;
  batch_count: number;
  spec: { strategy: { batch: { size?: number } } };
  approvals: { kind: string; status: string; decided_by: string | null; decision: string | null; edits: string[]; reason: string | null }[];
  counters: { done: number; total: number };
}

describe('the dashboard in Chromium against a real operator', () => {
  let dir: string;
  let fleet: LocalFleet;
  let url: string;
  let alice: ApiClient;
  let browser: DashboardBrowser;
  const nodes: InstallingNode[] = [];
  const pages: GuardedPage[] = [];
  const keys = generateSigningKeyPair();

  async function publish(version: string): Promise<void> {
    const bytes = randomBytes(32);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const signature = signArtifact(keys.privatePem, { component: 'web', version, kind: 'binary', sha256 });
    const query = new URLSearchParams({ component: 'web', version, kind: 'binary', signature, public_key: keys.publicPem });
    const response = await fetch(`${url}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${TOKENS.alice}` },
      body: new Uint8Array(bytes),
    });
    expect(response.status).toBe(201);
    const { id } = (await response.json()) as { id: string };
    expect((await alice.post(`/api/v1/artifacts/${id}/bless`)).status).toBe(200);
  }
  const spec = (name: string, version: string, over: Record<string, unknown> = {}) => ({
    name,
    target: { component: 'web', version },
    strategy: { batch: { size: 1 }, drain: { mode: 'none' }, health: { minHealthyTime: '0s', timeout: '1m' }, circuitBreaker: { maxConsecutiveFailures: 1 } },
    ...over,
  });
  const rollout = (id: string) => alice.ok<RolloutDetail>(`/api/v1/rollouts/${id}`);
  const open = async () => {
    const guarded = await browser.open();
    pages.push(guarded);
    return guarded;
  };
  /** Every part of the page has loaded (no "Loading…" left anywhere in it). */
  const loaded = (page: Page) =>
    page.waitForFunction(() => [...document.querySelectorAll('main p.muted')].every((p) => !p.textContent?.startsWith('Loading')), undefined, { timeout: 30_000 });
  /** Proof the page never reloaded: a mark on `window` survives only within one page load. */
  const markPage = (page: Page) => page.evaluate(() => ((window as unknown as { __same: number }).__same = 1));
  const samePage = (page: Page) => page.evaluate(() => (window as unknown as { __same?: number }).__same === 1);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'drydock-ui-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(
      tokensFile,
      stringify({
        tokens: [
          { name: 'alice', token: TOKENS.alice, role: 'approver' },
          { name: 'bob', token: TOKENS.bob, role: 'approver' },
          { name: 'vera', token: TOKENS.vera, role: 'viewer' },
          { name: 'agents', token: TOKENS.agents, role: 'agent' },
        ],
      }),
    );
    fleet = new LocalFleet({ bin: BUNDLE, dir });
    url = await fleet.startOperator(`127.0.0.1:${await freePort()}`, ['--tokens', tokensFile]);
    alice = new ApiClient(url, TOKENS.alice);
    for (const version of ['1.0.0', '2.0.0', '3.0.0', '4.0.0']) await publish(version);
    const agents = new ApiClient(url, TOKENS.agents);
    for (const { hostname, region } of HOSTS) {
      const node = await InstallingNode.register(agents, hostname, { web: '1.0.0' }, region);
      node.start();
      nodes.push(node);
    }
    browser = await DashboardBrowser.launch(url);
  });

  afterAll(async () => {
    for (const node of nodes) await node.stop();
    for (const { context } of pages) await context.close().catch(() => undefined);
    await browser?.close();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs in with the keyboard, shows the fleet by region, cordons and enables a node with its buttons, and logs out', async () => {
    const { page, problems } = await open();
    await page.goto('/');
    expect(page.url()).toBe(`${url}/ui/`);
    await page.locator('#token').waitFor();
    await screenshot(page, 'login');
    await logIn(page, TOKENS.alice, 'alice (approver)');
    await page.getByTestId('fleet-summary').filter({ hasText: '6 nodes: 6 ready' }).waitFor();
    for (const region of REGIONS) await page.locator('h2', { hasText: region }).waitFor();
    for (const { hostname } of HOSTS) expect(await page.locator(`tr[data-node="${hostname}"]`).textContent()).toContain('web@1.0.0');
    await screenshot(page, 'fleet');
    // Filter by region: only that region's nodes stay.
    await page.selectOption('#filter-region', 'eu-west');
    expect(await page.locator('tr[data-node]').count()).toBe(2);
    await page.selectOption('#filter-region', '');

    // Node detail, then Cordon through the button: the server's state changes (the CSRF token rode along).
    // Its agent reports A/B boot slots (an os-image mid-install): the page shows them.
    const node = nodes.find((n) => n.fake.hostname === 'eu-west-w1') as InstallingNode;
    node.fake.slots = { a: { version: '2024.1.0' }, b: { version: '2024.4.0' }, active: 'a', next: 'b', tries_left: 2 };
    await node.fake.heartbeat();
    await page.locator('a', { hasText: 'eu-west-w1' }).click();
    await page.locator('h1', { hasText: 'eu-west-w1' }).waitFor();
    await page.locator('[data-testid="boot-slots"] tr[data-slot="b"]', { hasText: 'next boot (2 tries left)' }).waitFor();
    expect(await page.locator('[data-testid="boot-slots"] tr[data-slot="a"]').textContent()).toBe('a2024.1.0active');
    await screenshot(page, 'node');
    await page.getByRole('button', { name: 'Cordon' }).click();
    await waitFor('eu-west-w1 cordoned', async () => (await alice.ok<{ cordoned: boolean }>(`/api/v1/nodes/${node.id}`)).cordoned);
    await page.getByRole('button', { name: 'Enable' }).click();
    await waitFor('eu-west-w1 enabled', async () => !(await alice.ok<{ cordoned: boolean }>(`/api/v1/nodes/${node.id}`)).cordoned);
    await page.getByRole('button', { name: 'Cordon' }).waitFor();

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.locator('#token').waitFor();
    await waitFor('the session to end', async () => (await (await page.request.get('/api/v1/session')).json()).authenticated === false);
    expect(problems.join('\n')).toBe('');
  });

  it('a rollout created through the API appears live, a viewer sees it without buttons, bob approves it with an edit, and it advances live to completed', async () => {
    const watcher = await open();
    await logIn(watcher.page, TOKENS.alice, 'alice (approver)');
    await watcher.page.goto('/ui/#/rollouts');
    await watcher.page.locator('h1', { hasText: 'Rollouts' }).waitFor();
    await markPage(watcher.page);

    const web2 = spec('web-2', '2.0.0', { approval: { required: true, distinctApprover: true } });
    // A pause between batches, so the page has a wait to show with the time it ends.
    const created = await alice.post<RolloutDetail>('/api/v1/rollouts', { ...web2, strategy: { ...web2.strategy, pauseBetweenBatches: '4s' } });
    expect(created.status).toBe(201);
    expect(created.body.batch_count).toBe(6);
    const id = created.body.id;
    // Appears without a reload (the event stream).
    await watcher.page.locator('tr[data-rollout="web-2"]', { hasText: 'awaiting_approval' }).waitFor({ timeout: 30_000 });
    expect(await samePage(watcher.page)).toBe(true);
    await screenshot(watcher.page, 'rollouts');
    await watcher.page.locator('a', { hasText: 'web-2' }).click();
    await watcher.page.getByTestId('rollout-progress').filter({ hasText: '0/6 nodes done' }).waitFor();
    await markPage(watcher.page);

    // alice created it: her inbox says another approver must approve, and offers no Approve.
    const aliceInbox = await open();
    await logIn(aliceInbox.page, TOKENS.alice, 'alice (approver)');
    await aliceInbox.page.goto('/ui/#/approvals');
    await aliceInbox.page.getByTestId('distinct-approver').waitFor();
    expect(await aliceInbox.page.getByRole('button', { name: /^Approve/ }).count()).toBe(0);

    // The viewer sees the inbox, the rollout and a node, with no action button anywhere.
    const viewer = await open();
    await logIn(viewer.page, TOKENS.vera, 'vera (viewer)');
    for (const route of ['#/approvals', `#/rollouts/${id}`, `#/nodes/${nodes[0]?.id}`, '#/fleet']) {
      await viewer.page.goto(`/ui/${route}`);
      await viewer.page.locator('main h1').first().waitFor();
      await loaded(viewer.page);
      expect({ route, buttons: await viewer.page.locator('main button').count() }).toEqual({ route, buttons: 0 });
    }
    await viewer.page.goto('/ui/#/approvals');
    await viewer.page.locator('[data-approval="web-2"]').waitFor();
    expect(await viewer.page.locator('main button').count()).toBe(0);
    // The server refuses the viewer anyway, even with the page's own CSRF token.
    const csrf = (await (await viewer.page.request.get('/api/v1/session')).json()).csrf_token as string;
    const refused = await viewer.page.request.post(`/api/v1/rollouts/${id}/approve`, { data: {}, headers: { 'x-csrf-token': csrf } });
    expect(refused.status()).toBe(403);
    expect((await refused.json()).error.code).toBe('FORBIDDEN');

    // bob approves with an edit: batch size 3 (the plan becomes 2 batches before the approval counts).
    const approver = await open();
    await logIn(approver.page, TOKENS.bob, 'bob (approver)');
    await approver.page.goto('/ui/#/approvals');
    const card = approver.page.locator('[data-approval="web-2"]');
    await card.waitFor();
    await screenshot(approver.page, 'approvals');
    await card.getByLabel('batch size').fill('3');
    await card.getByRole('button', { name: 'Approve with 1 edit(s)' }).click();
    await approver.page.getByTestId('inbox-empty').waitFor({ timeout: 10_000 });

    const approved = await rollout(id);
    expect(approved.batch_count).toBe(2);
    expect(approved.spec.strategy.batch.size).toBe(3);
    expect(approved.approvals.find((a) => a.kind === 'plan')).toMatchObject({ status: 'approved', decided_by: 'bob', edits: ['strategy.batch.size=3'] });

    // alice's rollout page follows it to the end without a reload: the pause after batch 1 with
    // the time it ends, then completion, and the edit.
    await watcher.page.getByTestId('next-batch').filter({ hasText: 'batch 2 waits for the pause between batches: starts at' }).waitFor({ timeout: 60_000 });
    await watcher.page.getByTestId('rollout-progress').filter({ hasText: '3/6 nodes done' }).waitFor();
    await watcher.page.getByTestId('rollout-progress').filter({ hasText: '6/6 nodes done' }).waitFor({ timeout: 60_000 });
    await watcher.page.locator('h1 .badge', { hasText: 'completed' }).waitFor({ timeout: 10_000 });
    expect(await watcher.page.locator('ol.timeline > li').count()).toBe(2);
    expect(await watcher.page.locator('main').textContent()).toContain('with edits strategy.batch.size=3');
    expect(await samePage(watcher.page)).toBe(true);
    expect((await rollout(id)).status).toBe('completed');
    await screenshot(watcher.page, 'rollout');
    for (const guarded of [watcher, aliceInbox, viewer, approver]) expect(guarded.problems.join('\n')).toBe('');
  });

  it('a tripped breaker waits in the inbox, and bob decides "roll back completed batches" there', async () => {
    for (const node of nodes) node.broken.add('3.0.0');
    const created = await alice.post<RolloutDetail>('/api/v1/rollouts', spec('web-3', '3.0.0'));
    expect(created.status).toBe(201);
    const id = created.body.id;
    await waitFor('the breaker to trip', async () => (await rollout(id)).status === 'awaiting_decision', { timeoutMs: 60_000 });

    const approver = await open();
    await logIn(approver.page, TOKENS.bob, 'bob (approver)');
    await approver.page.goto('/ui/#/approvals');
    const card = approver.page.locator('[data-approval="web-3"]');
    await card.getByRole('button', { name: 'Roll back completed batches' }).waitFor();
    await screenshot(approver.page, 'approvals-breaker');
    await card.getByRole('button', { name: 'Roll back completed batches' }).click();
    await approver.page.getByTestId('inbox-empty').waitFor({ timeout: 10_000 });
    const decided = await waitFor('the rollback to finish', async () => {
      const r = await rollout(id);
      return ['rolled_back', 'failed'].includes(r.status) && r;
    }, { timeoutMs: 60_000 });
    expect(decided.status).toBe('rolled_back');
    expect(decided.approvals.find((a) => a.kind === 'continuation')).toMatchObject({ status: 'decided', decided_by: 'bob', decision: 'rollback_completed_batches' });
    expect(approver.problems.join('\n')).toBe('');
  });

  it('bob rejects a plan from the inbox with a reason, and the rollout ends rejected with it', async () => {
    const created = await alice.post<RolloutDetail>('/api/v1/rollouts', spec('web-4', '4.0.0', { approval: { required: true } }));
    expect(created.status).toBe(201);
    const approver = await open();
    await logIn(approver.page, TOKENS.bob, 'bob (approver)');
    await approver.page.goto('/ui/#/approvals');
    const card = approver.page.locator('[data-approval="web-4"]');
    await card.getByLabel('reason').fill('not before the freeze ends');
    await card.getByRole('button', { name: 'Reject' }).click();
    await approver.page.getByTestId('inbox-empty').waitFor({ timeout: 10_000 });
    const rejected = await rollout(created.body.id);
    expect(rejected.status).toBe('rejected');
    expect(rejected.approvals.find((a) => a.kind === 'plan')).toMatchObject({ status: 'rejected', decided_by: 'bob', reason: 'not before the freeze ends' });
    expect(approver.problems.join('\n')).toBe('');
  });

  it('a forged POST with the session cookie but without the CSRF token is refused with 403 CSRF_TOKEN_INVALID and changes nothing', async () => {
    const { page, problems } = await open();
    await logIn(page, TOKENS.alice, 'alice (approver)');
    const target = nodes[0] as InstallingNode;
    // page.request carries the context's cookies, as a forged form post from the browser would.
    const forged = await page.request.post(`/api/v1/nodes/${target.id}/cordon`, { data: {} });
    expect(forged.status()).toBe(403);
    expect((await forged.json()).error.code).toBe('CSRF_TOKEN_INVALID');
    expect((await alice.ok<{ cordoned: boolean }>(`/api/v1/nodes/${target.id}`)).cordoned).toBe(false);
    expect(problems.join('\n')).toBe('');
  });

  it('every other page renders without console errors, at 1280×800 and on a narrow window', async () => {
    const { page, problems } = await open();
    await logIn(page, TOKENS.alice, 'alice (approver)');
    for (const name of ['migrations', 'events', 'drift', 'operators', 'artifacts']) {
      await page.goto(`/ui/#/${name}`);
      await page.locator('main h1').first().waitFor();
      await loaded(page);
      await screenshot(page, name);
    }
    await page.goto('/ui/#/events');
    await page.locator('td', { hasText: 'rollout.rolled_back' }).first().waitFor();
    await page.locator('#events-kind').fill('node.');
    await page.locator('#events-kind').press('Enter');
    await page.waitForFunction(() => [...document.querySelectorAll('table.events tbody tr td:nth-child(3)')].every((td) => td.textContent?.startsWith('node.')));
    await page.goto('/ui/#/artifacts');
    await page.locator('td', { hasText: '3.0.0' }).first().waitFor();
    await page.setViewportSize({ width: 420, height: 800 });
    await page.goto('/ui/#/fleet');
    await page.getByTestId('fleet-summary').waitFor();
    await screenshot(page, 'fleet-narrow');
    expect(problems.join('\n')).toBe('');
  });
});
