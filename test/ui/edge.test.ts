// The dashboard served through `drydock edge` (README "Upgrading drydock itself": people and
// agents reach the operators at http://EDGE/d/drydock/): a real operator process and a real edge
// (the built bundle), Chromium at the edge's address only. The page, its assets, the login cookie,
// a CSRF-protected action and the live event stream all go through the edge's /d/drydock/ prefix.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { LocalFleet } from '../../src/demo/local-fleet.js';
import { InstallingNode } from '../support/installing-node.js';
import { ApiClient, waitFor } from '../support/operator.js';
import { BUNDLE } from '../support/processes.js';
import { DashboardBrowser, type GuardedPage, screenshot } from './browser.js';

const TOKENS = {
  olga: 'olga-operator-token-0123456789',
  edge: 'edge-viewer-token-0123456789',
  agents: 'agents-token-0123456789',
} as const;
const HOSTS = ['edge-w1', 'edge-w2', 'edge-w3'];

describe('the dashboard through drydock edge', () => {
  let dir: string;
  let fleet: LocalFleet;
  let operatorUrl: string;
  let edgeUrl: string;
  let olga: ApiClient;
  let browser: DashboardBrowser;
  let guarded: GuardedPage | undefined;
  const nodes: InstallingNode[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'drydock-ui-edge-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(
      tokensFile,
      stringify({
        tokens: [
          { name: 'olga', token: TOKENS.olga, role: 'operator' },
          { name: 'edge', token: TOKENS.edge, role: 'viewer' },
          { name: 'agents', token: TOKENS.agents, role: 'agent' },
        ],
      }),
    );
    fleet = new LocalFleet({ bin: BUNDLE, dir, env: { DRYDOCK_TOKEN: TOKENS.edge } });
    operatorUrl = await fleet.startOperator(`127.0.0.1:${await freePort()}`, ['--tokens', tokensFile]);
    olga = new ApiClient(operatorUrl, TOKENS.olga);
    const agents = new ApiClient(operatorUrl, TOKENS.agents);
    for (const hostname of HOSTS) {
      const node = await InstallingNode.register(agents, hostname, { web: '1.0.0' }, 'us-east');
      node.start();
      nodes.push(node);
    }
    edgeUrl = await fleet.startEdge(`127.0.0.1:${await freePort()}`);
    // The edge learns the operator replicas from the registry: wait until it routes /d/drydock/.
    await waitFor('the edge to route /d/drydock/', async () => ((await fetch(`${edgeUrl}/d/drydock/health`)).ok ? true : undefined), { timeoutMs: 30_000 });
    browser = await DashboardBrowser.launch(edgeUrl);
  });

  afterAll(async () => {
    for (const node of nodes) await node.stop();
    await guarded?.context.close().catch(() => undefined);
    await browser?.close();
    await fleet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('logs in, shows the fleet, cordons with the CSRF token and follows the event stream, all under /d/drydock/', async () => {
    guarded = await browser.open();
    const { page, problems } = guarded;
    const requests: string[] = [];
    page.on('request', (request) => requests.push(new URL(request.url()).pathname));

    // `/d/drydock/` and `/d/drydock/ui` both land on the dashboard under the prefix.
    await page.goto('/d/drydock/ui');
    expect(page.url()).toBe(`${edgeUrl}/d/drydock/ui/`);
    await page.goto('/d/drydock/');
    expect(page.url()).toBe(`${edgeUrl}/d/drydock/ui/`);
    await page.locator('#token').focus();
    await page.keyboard.type(TOKENS.olga);
    await page.keyboard.press('Enter');
    await page.getByTestId('who').filter({ hasText: 'olga (operator)' }).waitFor();
    await page.getByTestId('fleet-summary').filter({ hasText: '3 nodes: 3 ready' }).waitFor();
    for (const hostname of HOSTS) await page.locator(`tr[data-node="${hostname}"]`).waitFor();
    await screenshot(page, 'edge-fleet');

    // The session cookie was set through the edge, for the edge's host.
    const cookies = await guarded.context.cookies(edgeUrl);
    expect(cookies.find((c) => c.name.includes('session'))).toMatchObject({ httpOnly: true, sameSite: 'Strict' });

    // A CSRF-protected write through the edge: Cordon on the node page.
    await page.locator('a', { hasText: 'edge-w2' }).click();
    await page.locator('h1', { hasText: 'edge-w2' }).waitFor();
    const node = nodes.find((n) => n.fake.hostname === 'edge-w2') as InstallingNode;
    await page.getByRole('button', { name: 'Cordon' }).click();
    await waitFor('edge-w2 cordoned', async () => (await olga.ok<{ cordoned: boolean }>(`/api/v1/nodes/${node.id}`)).cordoned || undefined);
    await page.locator('h1 .badge', { hasText: 'cordoned' }).first().waitFor();

    // The live stream through the edge: a change made elsewhere (the API, straight to the
    // operator) shows on the open page without a reload.
    await page.evaluate(() => ((window as unknown as { __same: number }).__same = 1));
    expect((await olga.post(`/api/v1/nodes/${node.id}/enable`)).status).toBe(200);
    await page.locator('h1 .badge', { hasText: 'cordoned' }).first().waitFor({ state: 'detached', timeout: 15_000 });
    expect(await page.evaluate(() => (window as unknown as { __same?: number }).__same === 1)).toBe(true);

    // A forged write without the CSRF token is refused through the edge too, and changes nothing
    // (Chromium logs the refusal as a console error: the guards are read before it).
    expect(problems.join('\n')).toBe('');
    const forged = await page.evaluate(async (id) => {
      const response = await fetch(`../api/v1/nodes/${id}/cordon`, { method: 'POST', credentials: 'same-origin' });
      return { status: response.status, body: await response.text() };
    }, node.id);
    expect(forged.status).toBe(403);
    expect(forged.body).toContain('CSRF_TOKEN_INVALID');
    expect((await olga.ok<{ cordoned: boolean }>(`/api/v1/nodes/${node.id}`)).cordoned).toBe(false);

    // Every request of the page went under the prefix: assets, API and the event stream.
    expect(requests.filter((path) => !path.startsWith('/d/drydock/'))).toEqual([]);
    expect(requests).toContain('/d/drydock/api/v1/events/stream');
    expect(requests.some((path) => /^\/d\/drydock\/ui\/app\.[0-9a-f]{12}\.js$/.test(path))).toBe(true);
  });
});
