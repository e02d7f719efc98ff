import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import type { DemoReport } from '../../src/demo/demo-report.js';
import { BUNDLE } from '../support/processes.js';

const run = promisify(execFile);

/** PIDs of live processes whose command line mentions `needle` (our own temp dir). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (cmdline.includes(needle) && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

describe('drydock demo --exit: the main job end to end', () => {
  it('upgrades a fleet under traffic with zero failed requests, trips the breaker once on a bad build and ends on 2.0.0 without drift', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drydock-demo-test-'));
    const reportFile = join(dir, 'report.json');
    const { stdout } = await run(
      process.execPath,
      [BUNDLE, 'demo', '--exit', '--dir', join(dir, 'runs'), '--listen', `127.0.0.1:${await freePort()}`, '--regions', 'us-east,eu-west', '--nodes-per-region', '2', '--deployments', '2', '--rate', '20', '--report', reportFile],
      { timeout: 420_000, maxBuffer: 32 * 1024 * 1024 },
    );
    expect(stdout).toMatch(/all demo processes stopped/);
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as DemoReport;
    expect(report.requests.errors).toEqual([]);
    expect(report.requests.failed).toBe(0);
    expect(report.requests.sent).toBeGreaterThan(200);
    expect(report.rollouts.map((r) => [r.name, r.status])).toEqual([
      ['node-agent-2.0.0', 'completed'],
      ['node-agent-2.0.1', 'rolled_back'],
    ]);
    expect(report.nodes).toHaveLength(4);
    for (const node of report.nodes) expect(node.components['node-agent']).toBe('2.0.0');
    expect(report.circuit_breaker_trips).toBe(1);
    expect(report.migrations).toBeGreaterThan(0);
    expect(report.drift).toBe(false);
    // No process the demo started is left: operator, supervisors, agents, edge, instances.
    expect(processesMentioning(dir)).toEqual([]);
  }, 480_000);
});
