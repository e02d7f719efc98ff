import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readStatusFile, statusFilePath } from '../../src/agent/drivers/process-driver.js';
import { WORKLOAD_STATUS_MAX_BYTES } from '../../src/domain/workload-report.js';

describe("a process instance's status file (DRYDOCK_STATUS_FILE)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-status-file-'));
  const file = statusFilePath(dir, 'inst-1');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads none from a missing file, the report from a good one, and refuses a bad or oversized one', async () => {
    expect(file).toBe(join(dir, 'inst-1.status.json'));
    expect(await readStatusFile(file)).toEqual({ ok: true, report: {} });
    writeFileSync(file, '{"volume": {"replicas": 2, "healthy_replicas": 1}, "activity": "restore", "note": "kept by the app"}');
    expect(await readStatusFile(file)).toEqual({ ok: true, report: { volume: { replicas: 2, healthy_replicas: 1 }, activity: 'restore' } });
    writeFileSync(file, 'not json');
    expect(await readStatusFile(file)).toMatchObject({ ok: false, problem: expect.stringContaining('not JSON') });
    // Read no further than the bound: a file of several MiB is refused without reading it whole.
    writeFileSync(file, `{"pad": "${'x'.repeat(4 * WORKLOAD_STATUS_MAX_BYTES * 16)}"}`);
    expect(await readStatusFile(file)).toEqual({ ok: false, problem: `larger than ${WORKLOAD_STATUS_MAX_BYTES} bytes` });
    writeFileSync(file, `{"pad": "${'x'.repeat(WORKLOAD_STATUS_MAX_BYTES - 100)}", "activity": "backup"}`);
    expect(await readStatusFile(file)).toEqual({ ok: true, report: { activity: 'backup' } });
  });
});
