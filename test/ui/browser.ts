// Debian's Chromium driven by playwright-core (never a downloaded browser), with guards every
// dashboard test asserts: no console error, no page error, no request to any host but the operator.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.DRYDOCK_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(import.meta.dirname, '../../test-artifacts/ui');

export interface GuardedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors, page errors and requests to other hosts seen so far. */
  problems: string[];
}

export class DashboardBrowser {
  private constructor(
    readonly browser: Browser,
    private readonly origin: string,
  ) {}

  static async launch(origin: string): Promise<DashboardBrowser> {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    mkdirSync(SCREENSHOTS, { recursive: true });
    return new DashboardBrowser(browser, origin);
  }

  /** A fresh context (its own cookies: one person) at 1280×800. */
  async open(): Promise<GuardedPage> {
    const context = await this.browser.newContext({ viewport: { width: 1280, height: 800 }, baseURL: this.origin });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    context.on('request', (request) => {
      const url = request.url();
      if (!url.startsWith(`${this.origin}/`) && !url.startsWith('data:')) problems.push(`request to another host: ${url}`);
    });
    return { page, context, problems };
  }

  async close(): Promise<void> {
    // launch() gives the browser a fresh temporary profile of its own and removes it on close.
    await this.browser.close();
  }
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Logs in with the keyboard only: focus the token field, type, Enter. */
export async function logIn(page: Page, token: string, name: string): Promise<void> {
  await page.goto('/');
  await page.locator('#token').focus();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.getByTestId('who').filter({ hasText: name }).waitFor();
}
