// The real agent (its own code, in-process) against a real operator: a restart keeps its state
// file and registers again with its credential; a wiped data dir is refused, says so in the
// log, and gets in once an admin re-enrolls the node (with the built CLI: run `npm run build`). On an open operator a wiped agent still
// registers, as the demo needs.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { startTestOperator, waitFor } from '../support/operator.js';
import { BUNDLE } from '../support/processes.js';

const AGENT_TOKEN = 'agent-token-0123456789';
const ADMIN_TOKEN = 'admin-token-0123456789';
const VIEWER_TOKEN = 'viewer-token-0123456789';
const run = promisify(execFile);

function newAgent(operatorUrl: string, dataDir: string, lines: string[], token?: string): Agent {
  return new Agent({
    operatorUrl,
    token,
    hostname: 'real-1',
    region: 'us-east',
    role: 'worker',
    maxInstances: 2,
    labels: {},
    listen: '127.0.0.1:0',
    dataDir,
    heartbeatIntervalMs: 200,
    drainDelayMs: 0,
    stopGraceMs: 1000,
    version: '1.0.0',
    trustedKeys: [],
    allowUnsigned: false,
    log: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
  });
}

/** Runs the built CLI; resolves with its exit code and output (never throws on the exit code). */
async function drydock(url: string, token: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BUNDLE, ...args], { env: { ...process.env, DRYDOCK_URL: url, DRYDOCK_TOKEN: token }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout, stderr: e.stderr };
  }
}

const stateOf = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, 'agent-state.json'), 'utf8')) as { nodeId: string; nodeCredential: string };
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe(`a real agent's identity across restarts, tokens on, on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;
  const running: Agent[] = [];

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-reenroll-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: [
      { name: 'agents', token: AGENT_TOKEN, role: 'agent' },
      { name: 'alice', token: ADMIN_TOKEN, role: 'admin' },
      { name: 'val', token: VIEWER_TOKEN, role: 'viewer' },
    ] }));
    op = await startTestOperator(t.db, { tokensFile, heartbeatGraceMs: 3_600_000 });
  });
  afterAll(async () => {
    for (const agent of running) await agent.stop();
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const credentialHash = async (id: string) =>
    (await t.db.query<{ credential_hash: string | null }>('SELECT credential_hash FROM nodes WHERE id = $1', [id]))[0]?.credential_hash;
  const reachable = (agent: Agent) => waitFor('the agent to reach the operator', async () => agent.health().operator.reachable);

  it('registers again after a restart with its state file, and is refused with a wiped one until an admin re-enrolls', async () => {
    const dataDir = join(dir, 'agent');
    const lines: string[] = [];
    const first = newAgent(op.url, dataDir, lines, AGENT_TOKEN);
    running.push(first);
    await first.start();
    const { nodeId, nodeCredential } = stateOf(dataDir);
    expect(await credentialHash(nodeId)).toBe(sha256(nodeCredential));
    await reachable(first);
    await first.stop();

    const restarted = newAgent(op.url, dataDir, lines, AGENT_TOKEN);
    running.push(restarted);
    await restarted.start();
    expect(stateOf(dataDir)).toMatchObject({ nodeId, nodeCredential });
    await reachable(restarted);
    const reregistered = await t.db.query<{ data: { proof: string } }>(`SELECT data FROM events WHERE kind = 'node.reregistered'`);
    expect(reregistered.map((e) => e.data.proof)).toEqual(['credential']);
    await restarted.stop();

    rmSync(dataDir, { recursive: true, force: true });
    const rowBefore = (await t.db.query('SELECT * FROM nodes WHERE id = $1', [nodeId]))[0];
    const wiped = newAgent(op.url, dataDir, lines, AGENT_TOKEN);
    running.push(wiped);
    let registered = false;
    const started = wiped.start().then(() => {
      registered = true;
    });
    const refusal = await waitFor('the refusal in the agent log', async () => lines.find((l) => l.includes('registration refused')));
    expect(JSON.parse(refusal)).toMatchObject({ level: 50, hostname: 'real-1', node_id: nodeId });
    expect(refusal).toContain('drydock node re-enroll real-1');
    expect((await t.db.query('SELECT * FROM nodes WHERE id = $1', [nodeId]))[0]).toEqual(rowBefore);
    expect(await t.db.query(`SELECT actor FROM events WHERE kind = 'node.reregistration_refused'`)).toEqual([{ actor: 'agents' }]);

    // Through the built CLI, as an admin would: a viewer is refused, the admin re-enrolls.
    const denied = await drydock(op.url, VIEWER_TOKEN, 'node', 're-enroll', 'real-1');
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/FORBIDDEN/);
    expect(await t.db.query(`SELECT id FROM events WHERE kind = 'node.re_enrolled'`)).toEqual([]);
    const reEnrolled = await drydock(op.url, ADMIN_TOKEN, 'node', 're-enroll', 'real-1', '--reason', 'disk replaced');
    expect(reEnrolled).toMatchObject({ code: 0, stdout: expect.stringContaining('real-1: re-enrolled') });
    expect(await t.db.query(`SELECT actor, data FROM events WHERE kind = 'node.re_enrolled'`)).toEqual([
      { actor: 'alice', data: { hostname: 'real-1', reason: 'disk replaced' } },
    ]);
    // The agent retries every 5 s; it is in once its next try lands.
    await waitFor('the wiped agent to be registered', async () => registered, { timeoutMs: 20_000 });
    await started;
    const fresh = stateOf(dataDir);
    expect(fresh.nodeId).toBe(nodeId);
    expect(fresh.nodeCredential).not.toBe(nodeCredential);
    expect(await credentialHash(nodeId)).toBe(sha256(fresh.nodeCredential));
    await reachable(wiped);
    expect(wiped.health().node_id).toBe(nodeId);
  });
});

describe(`a real agent on an open operator (no tokens) on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let dir: string;

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-open-'));
    op = await startTestOperator(t.db, { heartbeatGraceMs: 3_600_000 });
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers a wiped agent again under the same node id, as the demo needs', async () => {
    const dataDir = join(dir, 'agent');
    const lines: string[] = [];
    const first = newAgent(op.url, dataDir, lines);
    await first.start();
    const { nodeId, nodeCredential } = stateOf(dataDir);
    await first.stop();
    rmSync(dataDir, { recursive: true, force: true });
    const again = newAgent(op.url, dataDir, lines);
    try {
      await again.start();
      expect(stateOf(dataDir).nodeId).toBe(nodeId);
      expect(stateOf(dataDir).nodeCredential).not.toBe(nodeCredential);
      const events = await t.db.query<{ data: { proof: string } }>(`SELECT data FROM events WHERE kind = 'node.reregistered'`);
      expect(events.map((e) => e.data.proof)).toEqual(['open operator']);
      expect(lines.some((l) => l.includes('registration refused'))).toBe(false);
    } finally {
      await again.stop();
    }
  });
});
