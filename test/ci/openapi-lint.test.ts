// The operator's /openapi.json, written to a file and linted by `redocly lint` under its
// recommended rules (redocly.yaml): zero errors and zero warnings. Redocly runs offline here:
// no telemetry, no update check (it would ask the npm registry for its latest version).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, type TestDb } from '../support/db.js';
import { ApiClient, startTestOperator } from '../support/operator.js';

const root = resolve(import.meta.dirname, '../..');

describe('`redocly lint` of /openapi.json', () => {
  let t: TestDb;
  let op: RunningOperator;
  const dir = mkdtempSync(join(tmpdir(), 'drydock-openapi-'));
  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes the recommended rules with 0 errors and 0 warnings', async () => {
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(await new ApiClient(op.url).ok('/openapi.json'), null, 2));
    const result = spawnSync(join(root, 'node_modules/.bin/redocly'), ['lint', file, '--config', join(root, 'redocly.yaml'), '--format', 'stylish'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
    });
    const output = `${result.stdout}${result.stderr}`;
    expect(output).toContain('Your API description is valid');
    expect(output).not.toMatch(/\d+ warnings?/);
    expect(output).not.toMatch(/\d+ errors?/);
    expect(result.status).toBe(0);
  });
});
