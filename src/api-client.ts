import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { createReadStream } from 'node:fs';

/**
 * A file as a fetch body that reads the next piece only when the request has sent the last one
 * (Node 20's Readable.toWeb reads ahead without bound, which would buffer a large file whole).
 */
export function fileBodyStream(path: string): ReadableStream<Uint8Array> {
  const pieces = createReadStream(path, { highWaterMark: 256 * 1024 })[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await pieces.next();
        if (next.done) controller.close();
        else controller.enqueue(new Uint8Array(next.value as Buffer));
      },
      async cancel() {
        await pieces.return?.();
      },
    },
    { highWaterMark: 1 },
  );
}

/**
 * A small client for the operator's HTTP API, shared by the CLI and the agent. Errors from
 * the operator arrive as `{"error": {"code", "message", "details"}}` and become ApiCallError.
 */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface ApiClientOptions {
  baseUrl: string;
  token?: string | undefined;
  /** Per-request timeout in ms (default 30 s). */
  timeoutMs?: number;
}

/** Per-request options: cancellation, a timeout (default: the client's), extra headers. */
export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export class ApiClient {
  readonly baseUrl: string;

  constructor(private readonly options: ApiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    init: CallOptions & { stream?: ReadableStream<Uint8Array> } = {},
  ): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (init.stream) headers['content-type'] = 'application/octet-stream';
    else if (body !== undefined) headers['content-type'] = 'application/json';
    const timeout = AbortSignal.timeout(init.timeoutMs ?? this.options.timeoutMs ?? 30_000);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    let response: Response;
    try {
      const payload = init.stream ?? (body === undefined ? undefined : JSON.stringify(body));
      // A stream body is sent as it is read (`duplex: 'half'` is how fetch spells that).
      response = await fetch(`${this.baseUrl}${path}`, { method, headers, body: payload, signal, ...(init.stream ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (error) {
      throw this.unreachable(error);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.unreachable(error); // the connection died before the whole reply arrived
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!response.ok) throw replyError(response.status, parsed, `${method} ${path}`);
    return parsed as T;
  }

  /** No answer at all: status 0, with the low-level reason in `details.reason` (ECONNREFUSED, TimeoutError …). */
  private unreachable(error: unknown): ApiCallError {
    const reason = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
    // A certificate this process does not trust (a private CA, a self-signed operator).
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(reason)) {
      return new ApiCallError(0, 'UNREACHABLE', `cannot reach the operator at ${this.baseUrl}: its TLS certificate is not trusted (${reason}); pass --ca-file with the CA that signed it (env DRYDOCK_CA_FILE)`, { reason });
    }
    return new ApiCallError(0, 'UNREACHABLE', `cannot reach the operator at ${this.baseUrl} (${reason}); is it running? set DRYDOCK_URL or --operator`, { reason });
  }

  get<T>(path: string, init?: CallOptions): Promise<T> {
    return this.request<T>('GET', path, undefined, init);
  }

  post<T>(path: string, body: unknown = {}, init?: CallOptions): Promise<T> {
    return this.request<T>('POST', path, body, init);
  }

  put<T>(path: string, body: unknown, init?: { signal?: AbortSignal; timeoutMs?: number }): Promise<T> {
    return this.request<T>('PUT', path, body, init);
  }

  /** POSTs `stream` as an application/octet-stream body without reading it into memory first. */
  upload<T>(path: string, stream: ReadableStream<Uint8Array>, init: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    return this.request<T>('POST', path, undefined, { ...init, stream });
  }

  /**
   * Follows a Server-Sent Events endpoint and yields each event's JSON data. A dropped stream
   * is resumed with Last-Event-ID (the id of the last event yielded), so nothing is missed or
   * repeated. Without `retry`, a dropped stream is retried once after 500 ms and an unreachable
   * operator ends the stream with an error; with it, `retry` decides (and waits) after every
   * failure, and hears of every accepted (re)connection.
   */
  async *stream<T>(path: string, signal?: AbortSignal, retry: StreamRetry = ONE_QUICK_RETRY): AsyncGenerator<T> {
    let lastId: string | undefined;
    while (!signal?.aborted) {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
      if (lastId) headers['last-event-id'] = lastId;
      let response: Response;
      try {
        response = await fetch(`${this.baseUrl}${path}`, { headers, signal });
      } catch (error) {
        if (signal?.aborted) return;
        await retry.retry(this.unreachable(error));
        continue;
      }
      if (!response.ok || !response.body) {
        const text = await response.text().catch(() => '');
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        await retry.retry(replyError(response.status, parsed, `GET ${path}`));
        continue;
      }
      retry.connected();
      const queue: { id: string; data: T }[] = [];
      const parser = createParser({ onEvent: (event: EventSourceMessage) => queue.push({ id: event.id ?? '', data: JSON.parse(event.data) as T }) });
      const decoder = new TextDecoder();
      let reason = 'stream ended';
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
          while (queue.length > 0) {
            const next = queue.shift() as { id: string; data: T };
            // Advanced only once the event is handed over, so a resume never skips one.
            if (next.id) lastId = next.id;
            yield next.data;
          }
        }
      } catch (error) {
        if (signal?.aborted) return;
        reason = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      }
      if (signal?.aborted) return;
      await retry.retry(new ApiCallError(0, 'STREAM_LOST', `the event stream from ${this.baseUrl} was cut (${reason})`, { reason: `connection lost: ${reason}` }));
    }
  }
}

/** What `stream` does after a failure: wait and return to try again, or throw to end the stream. */
export interface StreamRetry {
  retry(error: unknown): Promise<void>;
  /** A (re)connection was accepted. */
  connected(): void;
}

/** The default for `stream`: one quick retry of a cut stream; any other failure ends it. */
const ONE_QUICK_RETRY: StreamRetry = {
  async retry(error) {
    if (!(error instanceof ApiCallError) || error.code !== 'STREAM_LOST') throw error;
    await new Promise((r) => setTimeout(r, 500));
  },
  connected() {},
};

/** The catalog error of a non-2xx reply (`{"error": {code, message, details}}`), or a generic one. */
function replyError(status: number, parsed: unknown, what: string): ApiCallError {
  const error = (parsed as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | undefined)?.error;
  return new ApiCallError(status, error?.code ?? `HTTP_${status}`, error?.message ?? `${what} failed with HTTP ${status}`, {
    ...(status >= 502 && status <= 504 ? { reason: `HTTP ${status}` } : {}),
    ...error?.details,
  });
}
