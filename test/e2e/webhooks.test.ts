// Webhooks end to end: the built operator (embedded Postgres in its data dir), the CLI, and a
// receiver that is a separate node process written by this test. The receiver goes down for a
// while, the operator is killed (-9) and started again in between: every event still reaches
// every subscription, and a request sent twice carries the same delivery id.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { isAlive, type LocalFleet, waitFor } from '../../src/demo/local-fleet.js';
import { verifySignature } from '../../src/operator/webhook-signature.js';
import type { DeliveryView, WebhookView } from '../../src/store/webhooks.js';
import { BUNDLE, startTestFleet } from '../support/processes.js';

const run = promisify(execFile);
const SECRET = 'e2e-webhook-secret-0123456789';
const OPERATOR_ARGS = ['--webhook-retry-initial', '250ms', '--webhook-retry-max', '1s'];

// The receiver: records every request (headers that matter and the raw body) as one JSON line,
// written before it answers 200, so the file is exactly what was acknowledged or more.
const RECEIVER = `
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
const [port, log] = process.argv.slice(2);
createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    if (req.method === 'POST') {
      appendFileSync(log, JSON.stringify({ path: req.url, delivery: req.headers['x-drydock-delivery'], kind: req.headers['x-drydock-event'], signature: req.headers['x-drydock-signature'], body }) + '\\n');
    }
    res.writeHead(200).end('ok');
  });
}).listen(Number(port), '127.0.0.1');
`;

interface Line {
  path: string;
  delivery: string;
  kind: string;
  signature: string;
  body: string;
}

describe('webhooks: a real receiver down for a while and an operator restart in between', () => {
  let fleet: LocalFleet;
  let receiver: ChildProcess | undefined;
  let port = 0;
  let log = '';
  let script = '';
  const receiverPids = new Set<number>();

  const cli = async (...args: string[]) => (await run(process.execPath, [BUNDLE, ...args], { env: { ...process.env, DRYDOCK_URL: fleet.operatorUrl }, timeout: 60_000 })).stdout;
  const lines = (): Line[] => {
    try {
      return readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
    } catch {
      return [];
    }
  };
  const deliveries = async () => JSON.parse(await cli('webhooks', 'deliveries', '--json')) as DeliveryView[];
  const setPolicy = async (name: string) => {
    const response = await fetch(`${fleet.operatorUrl}/api/v1/policies`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, match: { component: 'node-agent' }, approval: { required: true } }),
    });
    expect(response.status).toBe(201);
  };

  const startReceiver = async () => {
    receiver = spawn(process.execPath, [script, String(port), log], { stdio: 'ignore' });
    receiverPids.add(receiver.pid as number);
    await waitFor('the receiver to listen', async () => ((await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined))?.ok ? true : undefined), 10_000);
  };
  const stopReceiver = async () => {
    const child = receiver;
    receiver = undefined;
    if (!child?.pid) return;
    child.kill('SIGTERM');
    await waitFor('the receiver to exit', async () => (isAlive(child.pid as number) ? undefined : true), 10_000);
  };

  beforeAll(async () => {
    fleet = await startTestFleet('webhooks', OPERATOR_ARGS);
    port = await freePort();
    log = join(fleet.dir, 'received.jsonl');
    script = join(fleet.dir, 'receiver.mjs');
    writeFileSync(script, RECEIVER);
    writeFileSync(join(fleet.dir, 'secret'), `${SECRET}\n`);
    await startReceiver();
  });
  afterAll(async () => {
    await stopReceiver().catch(() => {});
    for (const pid of receiverPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await fleet?.stop();
    expect([...(fleet?.spawnedPids ?? []), ...receiverPids].filter(isAlive)).toEqual([]);
  });

  it('delivers through an outage and an operator kill -9, each delivery id once per event and subscription', async () => {
    const secretFile = join(fleet.dir, 'secret');
    const added = await cli('webhooks', 'add', `http://127.0.0.1:${port}/drydock`, '--events', 'policy.,node.down', '--secret-file', secretFile);
    expect(added).toMatch(/^webhook wh-\w+ added: http:\/\/127\.0\.0\.1:\d+\/drydock gets policy\., node\.down \(drydock\)\n$/);
    const slack = JSON.parse(await cli('webhooks', 'add', `http://127.0.0.1:${port}/slack`, '--events', 'policy.set', '--secret-file', secretFile, '--format', 'slack', '--json')) as WebhookView;
    expect(slack).toMatchObject({ format: 'slack', events: ['policy.set'] });
    expect(JSON.stringify(slack)).not.toContain(SECRET);

    await setPolicy('before-outage');
    await waitFor('the first event at both subscriptions', async () => (lines().length >= 2 ? true : undefined), 30_000);

    // The receiver goes away; two more events fail and wait for their retries.
    await stopReceiver();
    await setPolicy('during-outage-1');
    await setPolicy('during-outage-2');
    await waitFor(
      'deliveries to fail more than once',
      async () => {
        const pending = (await deliveries()).filter((d) => d.state === 'pending');
        return pending.length === 4 && pending.every((d) => d.attempts >= 2 && d.last_error !== null) ? true : undefined;
      },
      40_000,
    );
    const table = await cli('webhooks', 'deliveries', '--state', 'pending');
    expect(table.split('\n')[0]).toMatch(/^ID\s+WEBHOOK\s+EVENT\s+STATE\s+ATTEMPTS\s+LAST\s+NEXT ATTEMPT$/);
    expect(table).toMatch(/ECONNREFUSED/);

    // The operator dies mid-outage and comes back on the same data dir; one more event after.
    const listen = fleet.operatorUrl.replace('http://', '');
    await fleet.stopProcess('operator', 'SIGKILL');
    await fleet.startOperator(listen, OPERATOR_ARGS);
    await setPolicy('after-restart');
    const before = new Map((await deliveries()).map((d) => [d.id, d.attempts]));
    await waitFor(
      'the restarted operator to retry the outage deliveries',
      async () => {
        const now = await deliveries();
        return now.filter((d) => d.state === 'pending' && d.attempts > (before.get(d.id) ?? 0)).length >= 4 ? true : undefined;
      },
      40_000,
    );
    expect(lines()).toHaveLength(2);

    await startReceiver();
    const final = await waitFor(
      'every delivery to be delivered',
      async () => {
        const all = await deliveries();
        return all.length === 8 && all.every((d) => d.state === 'delivered') ? all : undefined;
      },
      60_000,
    );

    const received = lines();
    // Each (subscription, event) came with one delivery id; nothing arrived without a delivery row.
    const idsByEvent = new Map<string, Set<string>>();
    for (const line of received) {
      const body = JSON.parse(line.body) as { delivery_id?: string; event?: { id: number }; text?: string };
      expect(verifySignature(SECRET, line.body, line.signature, Math.floor(Date.now() / 1000))).toBe(true);
      const row = final.find((d) => d.id === line.delivery);
      expect(row, `delivery ${line.delivery} has a row`).toBeDefined();
      if (line.path === '/slack') expect(Object.keys(body)).toEqual(['text']);
      else expect(body).toMatchObject({ delivery_id: line.delivery, event: { id: row?.event_id, kind: 'policy.set' } });
      const key = `${line.path} ${row?.event_id}`;
      idsByEvent.set(key, (idsByEvent.get(key) ?? new Set()).add(line.delivery));
    }
    expect(idsByEvent.size).toBe(8);
    for (const [key, ids] of idsByEvent) expect([key, ids.size]).toEqual([key, 1]);
    expect(new Set(received.map((l) => l.delivery)).size).toBe(8);
    const slackTexts = received.filter((l) => l.path === '/slack').map((l) => (JSON.parse(l.body) as { text: string }).text);
    expect(slackTexts).toHaveLength(4);
    for (const text of slackTexts) expect(text).toMatch(/^\*policy\.set\* `[a-z0-9-]+` by \S+ at \S+ \(event \d+\)$/);

    const list = await cli('webhooks', 'list');
    expect(list).toMatch(new RegExp(`${slack.id}\\s+http://127\\.0\\.0\\.1:${port}/slack\\s+policy\\.set\\s+slack\\s+0\\s+4\\s+0`));
    expect(await cli('webhooks', 'remove', slack.id)).toBe(`webhook ${slack.id} removed\n`);
    expect((JSON.parse(await cli('webhooks', 'list', '--json')) as WebhookView[]).map((w) => w.format)).toEqual(['drydock']);
  }, 180_000);
});
