// `drydock demo --approve-in-ui`: the demo prints the dashboard's address and bob's token, creates
// the upgrade as alice and waits; a person (Chromium here) logs in as bob and approves it in the
// inbox; the demo goes on and finishes. A small demo (one region, two agents, one deployment).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { waitFor } from '../support/operator.js';
import { BUNDLE } from '../support/processes.js';
import { DashboardBrowser, logIn, screenshot } from './browser.js';

describe('drydock demo --approve-in-ui', () => {
  let demo: ChildProcess | undefined;
  let browser: DashboardBrowser | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'drydock-demo-ui-'));

  afterAll(async () => {
    await browser?.close();
    // The demo stops its own fleet on SIGTERM; it has ended by itself when the test passed.
    if (demo?.pid !== undefined && demo.exitCode === null) {
      demo.kill('SIGTERM');
      await waitFor('the demo to stop', async () => demo?.exitCode !== null, { timeoutMs: 60_000 });
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('waits for the upgrade to be approved in the dashboard, then finishes', async () => {
    let stdout = '';
    const listen = `127.0.0.1:${await freePort()}`;
    demo = spawn(
      process.execPath,
      [BUNDLE, 'demo', '--exit', '--approve-in-ui', '--dir', join(dir, 'runs'), '--listen', listen, '--regions', 'us-east', '--nodes-per-region', '2', '--deployments', '1', '--replicas', '2', '--rate', '5', '--workloads', 'process'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    demo.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    demo.stderr?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => demo?.once('exit', (code) => resolve(code)));

    const waiting = await waitFor(
      'the demo to wait for an approval in the dashboard',
      async () => {
        if (demo?.exitCode !== null) throw new Error(`the demo exited early:\n${stdout}`);
        return /waiting for bob to approve it in the dashboard\n +open (\S+) and log in with bob's token (\S+)/.exec(stdout) ?? undefined;
      },
      { timeoutMs: 240_000, intervalMs: 250 },
    );
    const [, approvalsUrl = '', bobToken = ''] = waiting;
    expect(approvalsUrl).toBe(`http://${listen}/ui/#/approvals`);
    expect(stdout).toContain(`log in as bob   (approver): ${bobToken}`);

    browser = await DashboardBrowser.launch(`http://${listen}`);
    const { page, problems } = await browser.open();
    await logIn(page, bobToken, 'bob (approver)');
    await page.goto(approvalsUrl);
    const card = page.locator('[data-approval]').first();
    await card.getByRole('button', { name: 'Approve' }).waitFor();
    await screenshot(page, 'demo-approvals');
    await card.getByRole('button', { name: 'Approve' }).click();
    await page.getByTestId('inbox-empty').waitFor({ timeout: 15_000 });
    await page.context().close();

    expect(await exited).toBe(0);
    expect(stdout).toContain('approved in the dashboard');
    expect(stdout).toMatch(/rollout completed/);
    expect(stdout).toMatch(/all demo processes stopped/);
    expect(problems.join('\n')).toBe('');
    // A whole (small) demo, like test/e2e/demo.test.ts: minutes on cores shared with other suites.
  }, 420_000);
});
