import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { processesMentioning } from '../../src/demo/leftovers.js';
import { type OsImageDemoReport, readHookLines } from '../../src/demo/os-image-report.js';
import { simulatedReboots } from '../../src/demo/simulated-reboots.js';
import type { BootSlotsState } from '../../src/domain/boot-slots.js';
import { BUNDLE } from '../support/processes.js';

const run = promisify(execFile);

// `drydock demo --scenario os-image --exit` run as a user would (the real bundle, its own
// operator, supervisors and agents on a free port), checked from its JSON report and from the
// files its processes wrote: the hooks files, each agent's slot state and each supervisor's log.

describe('drydock demo --scenario os-image --exit', () => {
  it('reboots every node once into the new image with each hook once, then the broken image falls back on every node that got it and trips the breaker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drydock-demo-os-image-test-'));
    try {
      const reportFile = join(dir, 'report.json');
      const { stdout } = await run(
        process.execPath,
        [BUNDLE, 'demo', '--scenario', 'os-image', '--exit', '--dir', join(dir, 'runs'), '--listen', `127.0.0.1:${await freePort()}`, '--report', reportFile],
        // About 80 s; up to three times that on a loaded 2-core machine (README).
        { timeout: 420_000, maxBuffer: 32 * 1024 * 1024 },
      );
      expect(stdout).toMatch(/all demo processes stopped/);
      const report = JSON.parse(readFileSync(reportFile, 'utf8')) as OsImageDemoReport;
      expect(report.scenario).toBe('os-image');
      const [upgrade, broken] = report.rollouts;
      expect(report.rollouts.map((r) => [r.name, r.version, r.status])).toEqual([
        ['os-2.0.0', '2.0.0', 'completed'],
        ['os-2.0.1', '2.0.1', 'aborted'],
      ]);
      expect(report.circuit_breaker_trips).toBe(1);
      // The default os-image fleet: 2 regions × 2 nodes.
      expect(report.nodes.map((n) => n.hostname)).toEqual(['eu-west-node-1', 'eu-west-node-2', 'us-east-node-1', 'us-east-node-2']);

      for (const node of report.nodes) {
        const where = { host: node.hostname };
        // Every node rebooted exactly once into 2.0.0 (and once for its first image), and runs it now.
        expect({ ...where, os: node.os, provision: node.reboots.provision, upgrade: node.reboots.upgrade, task: node.tasks['os-2.0.0']?.state }).toEqual({ ...where, os: '2.0.0', provision: 1, upgrade: 1, task: 'done' });
        // The supervisor's own log agrees: every reboot the report counts, no other.
        expect({ ...where, reboots: simulatedReboots(join(report.run_dir, `${node.hostname}.log`)) }).toEqual({ ...where, reboots: node.reboots.provision + node.reboots.upgrade + node.reboots.broken });
        // The slot state on the node's disk: 2.0.0 active and blessed, nothing pending.
        const slots = JSON.parse(readFileSync(join(report.run_dir, 'agents', node.hostname, 'slots', 'state.json'), 'utf8')) as BootSlotsState;
        expect({ ...where, active: slots.slots[slots.active], next: slots.next, tries_left: slots.tries_left, fallback: slots.fallback, reboot: slots.reboot }).toEqual({
          ...where,
          active: expect.objectContaining({ version: '2.0.0', blessed: true }),
          next: slots.active,
          tries_left: 0,
          fallback: null,
          reboot: null,
        });
        expect(node.slots).toMatchObject({ active: slots.active, [slots.active]: { version: '2.0.0' } });

        // The hooks ran on the node and wrote its file: preNode then postNode, once each, for the upgrade.
        const lines = readHookLines(node.hooks_file);
        expect(node.hooks).toEqual(lines);
        expect({ ...where, upgrade: lines.filter((l) => l.rollout_id === upgrade?.id).map((l) => `${l.point} ${l.version}`) }).toEqual({ ...where, upgrade: ['preNode 2.0.0', 'postNode 2.0.0'] });

        const task = node.tasks['os-2.0.1'];
        const gotBroken = task !== undefined && task.state !== 'skipped';
        const brokenHooks = lines.filter((l) => l.rollout_id === broken?.id).map((l) => `${l.point} ${l.version}`);
        if (gotBroken) {
          // It tried 2.0.1 three times (a reboot into it, two more after failed checks) and booted
          // its previous slot by itself (the fourth reboot): reverted, with the failing check's reason.
          expect({ ...where, task: task.state, reboots: node.reboots.broken, reverted: node.reverted?.version, hooks: brokenHooks }).toEqual({ ...where, task: 'failed', reboots: 4, reverted: '2.0.1', hooks: ['preNode 2.0.1'] });
          expect(node.reverted?.reason).toMatch(/^boot checks of 2\.0\.1 failed on every try \(last: required\.d\/10-boot failed \(exit code 1\): kernel panic: no root filesystem \(simulated\)\); booted slot [ab] \(2\.0\.0\) again$/);
          expect(task.last_error).toBe(`install reverted: ${node.reverted?.reason}`);
          const other = slots.active === 'a' ? 'b' : 'a';
          expect(slots.slots[other]).toMatchObject({ version: '2.0.1', blessed: false });
        } else {
          expect({ ...where, task: task?.state, reboots: node.reboots.broken, reverted: node.reverted, hooks: brokenHooks }).toEqual({ ...where, task: 'skipped', reboots: 0, reverted: null, hooks: [] });
        }
      }
      // The breaker (maxConsecutiveFailures 2) stopped it after the first batch: two nodes got 2.0.1.
      expect(report.nodes.filter((n) => n.reverted !== null).map((n) => n.hostname)).toEqual(['eu-west-node-1', 'us-east-node-1']);

      // Nothing the demo started is left: operator, supervisors, agents, hooks.
      expect(processesMentioning(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 480_000);
});
