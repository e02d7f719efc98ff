import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient as CliApiClient } from '../../src/api-client.js';
import { Reconnector } from '../../src/cli/reconnect.js';
import type { RunningOperator } from '../../src/operator/server.js';
import type { EventRow } from '../../src/store/events.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

/** Reads SSE messages from the stream until `count` arrived; returns their `id:` lines and data. */
async function readStream(url: string, headers: Record<string, string>, count: number): Promise<{ id: number; data: EventRow }[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  const received: { id: number; data: EventRow }[] = [];
  try {
    const response = await fetch(url, { headers, signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    while (received.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
        if (fields.id) received.push({ id: Number(fields.id), data: JSON.parse(fields.data as string) as EventRow });
      }
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return received;
}

describe(`event stream resumption (Last-Event-ID) on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let n = 0;

  const makeEvents = async (count: number) => {
    for (let i = 0; i < count; i++) {
      expect((await api.post('/api/v1/deployments', { name: `ev-${++n}`, replicas: 1, workload: { command: 'sleep' } })).status).toBe(201);
    }
  };
  const allIds = async () => (await api.ok<EventRow[]>('/api/v1/events?after=0&kind_prefix=deployment.created&limit=5000')).map((e) => e.id);

  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    await makeEvents(5);
  });

  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('resumes right after Last-Event-ID, which wins over ?after=; each message carries id: = the event id', async () => {
    const ids = await allIds();
    expect(ids).toHaveLength(5);
    const stream = `${op.url}/api/v1/events/stream?after=0&kind_prefix=deployment.created`;
    const resumed = await readStream(stream, { 'last-event-id': String(ids[1]) }, 3);
    expect(resumed.map((m) => m.id)).toEqual(ids.slice(2));
    expect(resumed.every((m) => m.data.id === m.id)).toBe(true);
    // Without the header, ?after= decides.
    const fromAfter = await readStream(`${op.url}/api/v1/events/stream?after=${ids[3]}&kind_prefix=deployment.created`, {}, 1);
    expect(fromAfter.map((m) => m.id)).toEqual([ids[4]]);
  });

  it('refuses a Last-Event-ID that is not an event id with 400 VALIDATION_FAILED', async () => {
    for (const bad of ['abc', '-1', '1.5', '1e3', '9999999999999999', ' ']) {
      const response = await api.get(`/api/v1/events/stream?after=0`, { headers: { 'last-event-id': bad } });
      const error = expectApiError(response, 400, 'VALIDATION_FAILED');
      expect(JSON.stringify(error.details)).toContain('last-event-id');
    }
  });

  it('the client stream resumes across an operator restart: every event once, in order', async () => {
    const port = new URL(op.url).port;
    const client = new CliApiClient({ baseUrl: op.url });
    const notices: string[] = [];
    const reconnect = new Reconnector({ timeoutMs: 30_000, timeoutText: '30s', notice: (line) => notices.push(line) });
    const controller = new AbortController();
    const seen: number[] = [];
    const reading = (async () => {
      for await (const e of client.stream<EventRow>('/api/v1/events/stream?after=0&kind_prefix=deployment.created', controller.signal, reconnect)) seen.push(e.id);
    })();
    try {
      await waitFor('the events so far', async () => seen.length === 5);
      await op.close();
      await waitFor('a reconnect notice', async () => notices.some((l) => /^operator unreachable \(.+\), reconnecting in \d+\.\ds…$/.test(l)));
      op = await startTestOperator(t.db, { listen: `127.0.0.1:${port}` });
      await makeEvents(3);
      await waitFor('the events made after the restart', async () => seen.length >= 8);
      expect(seen).toEqual(await allIds());
      expect(notices.at(-1)).toBe('reconnected');
    } finally {
      controller.abort();
      await reading;
    }
  });
});
