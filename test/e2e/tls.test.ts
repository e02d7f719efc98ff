// TLS end to end with a self-signed certificate made by openssl: a real operator serving HTTPS,
// the CLI and an agent trusting it with --ca-file (and refusing it without), an edge serving
// HTTPS that follows the operator over HTTPS. Also the operator's request log: one JSON line per
// request with the caller's x-request-id, echoed in the response.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { isAlive, waitFor } from '../../src/demo/local-fleet.js';
import { BUNDLE } from '../support/processes.js';

describe('TLS: operator and edge serve HTTPS; CLI, agent and edge trust it with --ca-file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-e2e-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const children: ChildProcess[] = [];
  const output = new Map<ChildProcess, string>();
  let operatorUrl = '';
  let trusting: Agent;

  const env = { ...process.env, DRYDOCK_LOG_FORMAT: 'json', DRYDOCK_LOG_LEVEL: 'info', NO_COLOR: '1' };
  function start(args: string[]): ChildProcess {
    const child = spawn(process.execPath, [BUNDLE, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    output.set(child, '');
    const collect = (chunk: Buffer) => output.set(child, (output.get(child) ?? '') + chunk.toString());
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    return child;
  }
  function cli(args: string[]) {
    const result = spawnSync(process.execPath, [BUNDLE, '--operator', operatorUrl, ...args], { env, encoding: 'utf8', timeout: 60_000 });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  }

  beforeAll(async () => {
    if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first`);
    const made = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
      { encoding: 'utf8' },
    );
    expect(made.status, made.stderr).toBe(0);
    trusting = new Agent({ connect: { ca: readFileSync(cert, 'utf8') } });
    const port = await freePort();
    operatorUrl = `https://127.0.0.1:${port}`;
    const operator = start(['operator', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'operator'), '--tls-cert', cert, '--tls-key', key]);
    await waitFor(
      'the operator to answer over HTTPS',
      async () => {
        if (operator.exitCode !== null) throw new Error(`operator exited: ${output.get(operator)}`);
        const response = await undiciFetch(`${operatorUrl}/health/ready`, { dispatcher: trusting });
        return response.status === 200 ? true : undefined;
      },
      90_000,
    );
  }, 120_000);

  afterAll(async () => {
    for (const child of children) if (child.pid && isAlive(child.pid)) process.kill(child.pid, 'SIGTERM');
    await waitFor('every process to stop', async () => (children.every((c) => !c.pid || !isAlive(c.pid)) ? true : undefined), 20_000).catch(() => {
      for (const child of children) if (child.pid && isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
    });
    expect(children.filter((c) => c.pid && isAlive(c.pid))).toEqual([]);
    await trusting?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS only: a plain HTTP request to the port gets no API answer', async () => {
    const plain = await fetch(operatorUrl.replace('https:', 'http:') + '/health').then(
      (r) => r.status,
      () => 'refused',
    );
    expect(plain).not.toBe(200);
  });

  it('the CLI refuses the certificate without --ca-file and says what to do; with it, it works', () => {
    const refused = cli(['nodes', '--json']);
    expect(refused.stderr).toContain('TLS certificate is not trusted');
    expect(refused.stderr).toContain('--ca-file');
    expect(refused.stderr).toMatch(/\[UNREACHABLE\]\n$/);
    expect(refused.code).toBe(1);

    const trusted = cli(['--ca-file', cert, 'nodes', '--json']);
    expect(trusted.stderr).toBe('');
    expect(JSON.parse(trusted.stdout)).toEqual([]);
    expect(trusted.code).toBe(0);

    const missing = cli(['--ca-file', join(dir, 'nope.pem'), 'nodes']);
    expect(missing.stderr).toContain('--ca-file');
    expect(missing.stderr).toContain('ENOENT');
    expect(missing.code).toBe(1);
  });

  it('an agent registers and heartbeats over HTTPS with --ca-file (env DRYDOCK_CA_FILE works too)', async () => {
    start(['agent', '--operator', operatorUrl, '--ca-file', cert, '--hostname', 'tls-node-1', '--region', 'r1', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'agent-1')]);
    const node = await waitFor(
      'tls-node-1 to be ready',
      async () => {
        const nodes = JSON.parse(cli(['--ca-file', cert, 'nodes', '--json']).stdout) as { hostname: string; status: string }[];
        return nodes.find((n) => n.hostname === 'tls-node-1' && n.status === 'ready');
      },
      60_000,
      500,
    );
    expect(node.status).toBe('ready');
    const viaEnv = spawnSync(process.execPath, [BUNDLE, '--operator', operatorUrl, 'node', 'show', 'tls-node-1', '--json'], {
      env: { ...env, DRYDOCK_CA_FILE: cert },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(viaEnv.status, viaEnv.stderr).toBe(0);
    expect((JSON.parse(viaEnv.stdout) as { hostname: string }).hostname).toBe('tls-node-1');
  });

  it('the edge serves HTTPS and follows the operator over HTTPS', async () => {
    const port = await freePort();
    const edge = start(['edge', '--operator', operatorUrl, '--ca-file', cert, '--listen', `127.0.0.1:${port}`, '--tls-cert', cert, '--tls-key', key]);
    const health = await waitFor(
      'the edge to have read the endpoint table over HTTPS',
      async () => {
        if (edge.exitCode !== null) throw new Error(`edge exited: ${output.get(edge)}`);
        const response = await undiciFetch(`https://127.0.0.1:${port}/health`, { dispatcher: trusting });
        const body = (await response.json()) as { status: string; last_refresh_at: string | null };
        return body.last_refresh_at ? body : undefined;
      },
      30_000,
    );
    expect(health.status).toBe('healthy');
  });

  it('logs one line per request with method, route, status, duration and the x-request-id it echoes', async () => {
    const response = await undiciFetch(`${operatorUrl}/api/v1/nodes/tls-node-1`, { dispatcher: trusting, headers: { 'x-request-id': 'tls-test-42' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe('tls-test-42');
    const generated = await undiciFetch(`${operatorUrl}/api/v1/nodes/nope`, { dispatcher: trusting, headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.status).toBe(404);
    const ours = generated.headers.get('x-request-id') ?? '';
    expect(ours).toMatch(/^[0-9a-f-]{36}$/);

    const operator = children[0]!;
    const line = await waitFor(
      'the request log line',
      async () =>
        (output.get(operator) ?? '')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((l) => l.msg === 'request' && l.request_id === 'tls-test-42'),
      10_000,
    );
    expect(line).toMatchObject({ method: 'GET', route: '/api/v1/nodes/:id', status: 200, request_id: 'tls-test-42' });
    expect(typeof line.duration_ms).toBe('number');
    const refusedLine = await waitFor('the 404 line with our id', async () => ((output.get(operator) ?? '').includes(`"request_id":"${ours}"`) ? true : undefined), 10_000);
    expect(refusedLine).toBe(true);
    // Heartbeats are debug: at level info the log holds none of them.
    expect(output.get(operator)).not.toContain('"route":"/api/v1/agent/heartbeat"');
  });
});
