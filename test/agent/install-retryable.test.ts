import { rmSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BlobServer, buildArchive, publish, reconciler, tempDir } from './artifact-fixtures.js';

const server = new BlobServer();
const dirs: string[] = [];

function dataDir(): string {
  const dir = tempDir('components');
  dirs.push(dir);
  return dir;
}

beforeAll(() => server.start());
afterAll(() => server.stop());
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the retryable flag of install reports', () => {
  it('is true on a failed download (the agent retries it), false on a refusal, absent on other phases', async () => {
    const dir = dataDir();
    const desired = publish(server, await buildArchive(dir, { bin: 'x' }), { component: 'tool', version: '1.0.0' });
    const { r } = reconciler(dir, server, { downloadRetryMs: 60_000 });
    await r.reconcile({ tool: { ...desired, url: '/nowhere' } });
    expect(r.reports()).toMatchObject([{ phase: 'failed', retryable: true }]);

    const unsigned = publish(server, await buildArchive(dir, { bin: 'y' }), { component: 'other', version: '1.0.0', signer: null });
    const second = reconciler(dataDir(), server).r;
    await second.reconcile({ other: unsigned });
    expect(second.reports()).toMatchObject([{ phase: 'failed', reason: expect.stringContaining('unsigned'), retryable: false }]);

    const third = reconciler(dataDir(), server).r;
    await third.reconcile({ tool: desired });
    const [done] = third.reports();
    expect(done?.phase).toBe('done');
    expect(done).not.toHaveProperty('retryable');
  });
});
