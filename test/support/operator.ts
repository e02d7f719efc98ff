// Starts the real operator in-process on loopback, and talks to it over real HTTP.
import { inspect } from 'node:util';
import pino from 'pino';
import { expect } from 'vitest';
import { OPERATOR_DEFAULTS, type OperatorOptions, type RunningOperator, startOperator } from '../../src/operator/server.js';
import type { Db } from '../../src/store/db.js';

/** Options for a test operator: a free loopback port, a quick loop, a short grace, no log noise. */
export function testOperatorOptions(db: Db, overrides: Partial<OperatorOptions> = {}): OperatorOptions {
  return {
    ...OPERATOR_DEFAULTS,
    db,
    listen: '127.0.0.1:0',
    migrate: false,
    reconcileIntervalMs: 100,
    heartbeatGraceMs: 1500,
    version: 'test',
    log: pino({ level: 'silent' }),
    ...overrides,
  };
}

export function startTestOperator(db: Db, overrides: Partial<OperatorOptions> = {}): Promise<RunningOperator> {
  return startOperator(testOperatorOptions(db, overrides));
}

export interface ApiResponse<T> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface ErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}

export interface RequestOptions {
  /** Send this text as the body instead of JSON-encoding `body`. */
  raw?: string;
  contentType?: string;
  /** A bearer token for this request; `null` sends none even when the client has one. */
  token?: string | null;
  headers?: Record<string, string>;
}

/** A small HTTP client for the operator API; bodies are parsed as JSON when they are JSON. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly token?: string,
  ) {}

  withToken(token: string | undefined): ApiClient {
    return new ApiClient(this.baseUrl, token);
  }

  async request<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.token : options.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (options.raw !== undefined) payload = options.raw;
    else if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const response = await fetch(`${this.baseUrl}${path}`, { method, headers, body: payload });
    const text = await response.text();
    const isJson = response.headers.get('content-type')?.includes('json') ?? false;
    return { status: response.status, body: (isJson && text ? JSON.parse(text) : text) as T, text, headers: response.headers };
  }

  get<T>(path: string, options?: RequestOptions): Promise<ApiResponse<T>> {
    return this.request<T>('GET', path, undefined, options);
  }

  post<T>(path: string, body?: unknown, options?: RequestOptions): Promise<ApiResponse<T>> {
    return this.request<T>('POST', path, body, options);
  }

  /** GET that must succeed; returns the body. */
  async ok<T>(path: string): Promise<T> {
    const response = await this.get<T>(path);
    if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${response.text}`);
    return response.body;
  }
}

/** Asserts the catalog error shape `{"error": {"code", "message", "details"}}` with this status and code. */
export function expectApiError(response: ApiResponse<unknown>, status: number, code: string): ErrorBody['error'] {
  expect({ status: response.status, body: response.body }).toMatchObject({ status, body: { error: { code } } });
  const body = response.body as ErrorBody;
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'details', 'message']);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(10);
  expect(body.error.details).toBeTypeOf('object');
  expect(body.error.details).not.toBeNull();
  // Never a stack trace.
  expect(response.text).not.toMatch(/\n\s+at /);
  return body.error;
}

/**
 * Polls `probe` until it returns something other than undefined/false, or fails after
 * `timeoutMs` with the last value seen. Use it for what the reconciler does in its own time.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  { timeoutMs = 15_000, intervalMs = 50 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${inspect(last, { depth: 4 })}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
