// Helpers for end-to-end tests of reboot-class components (DESIGN.md §12) on a local fleet of
// supervised agents: real signed OS images (.tar.gz with `version` and `required.d/` boot
// checks), publishing them to the real operator, and reading what a node keeps on its own
// disk (its supervisor's log and pid file, its A/B slot state, its install journal).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { ApiClient } from '../../src/api-client.js';
import { writeOsImage } from '../../src/demo/os-images.js';
import type { BootSlotsState } from '../../src/domain/boot-slots.js';
import { signArtifact } from '../../src/signing.js';
import { publisher, sha256File } from '../agent/artifact-fixtures.js';

export const PASSING_CHECK = '#!/bin/sh\nexit 0\n';

/** Publishes `file` as `component` `version` of `kind`, signed by the test publisher, and blesses it. */
export async function publishSigned(operatorUrl: string, api: ApiClient, component: string, version: string, kind: 'os-image' | 'binary', file: string): Promise<string> {
  const sha256 = sha256File(file);
  const signature = signArtifact(publisher.privatePem, { component, version, kind, sha256 });
  const query = new URLSearchParams({ component, version, kind, signature, public_key: publisher.publicPem });
  const response = await fetch(`${operatorUrl}/api/v1/artifacts?${query}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(file) });
  const text = await response.text();
  expect(response.status, text).toBe(201);
  const { id } = JSON.parse(text) as { id: string };
  await api.post(`/api/v1/artifacts/${id}/bless`);
  return id;
}

/** A real OS image in `dir` (src/demo/os-images.ts) whose one boot check `required.d/10-boot` is `check` (a shell script). */
export function buildOsImage(dir: string, version: string, check = PASSING_CHECK): Promise<string> {
  return writeOsImage(dir, version, { script: check });
}

/** The pid of the agent a supervisor with this data dir runs now (its pid file), if any. */
export function supervisedAgentPid(dataDir: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(dataDir, 'supervisor.json'), 'utf8')) as { agent_pid?: number }).agent_pid;
  } catch {
    return undefined; // not started yet
  }
}

/** The node's A/B slot state, as its agent keeps it on disk. */
export function slotsOnDisk(dataDir: string): BootSlotsState {
  return JSON.parse(readFileSync(join(dataDir, 'slots', 'state.json'), 'utf8')) as BootSlotsState;
}

/** The agent's install journal record of `component` (what it did last, and why). */
export function installRecord(dataDir: string, component: string): { version: string; phase: string; reason?: string } | undefined {
  try {
    return (JSON.parse(readFileSync(join(dataDir, 'components', 'journal.json'), 'utf8')) as { installs: Record<string, { version: string; phase: string; reason?: string }> }).installs[component];
  } catch {
    return undefined;
  }
}
