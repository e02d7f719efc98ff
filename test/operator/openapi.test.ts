// /openapi.json is complete: every operation names itself, says what it does, describes its
// success body and the catalog errors it answers with. A route added without them fails here.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_STATUS, ROUTE_ERRORS } from '../../src/operator/openapi-errors.js';
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, expectApiError, startTestOperator } from '../support/operator.js';

interface Operation {
  operationId?: string;
  summary?: string;
  security?: unknown[];
  responses: Record<string, { description: string; content?: Record<string, { schema?: unknown }> }>;
}
interface Document {
  servers?: { url: string }[];
  info: { license?: { name: string } };
  paths: Record<string, Record<string, Operation>>;
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options']);

function operationsOf(document: Document): { key: string; path: string; operation: Operation }[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.has(method))
      .map(([method, operation]) => ({ key: `${method.toUpperCase()} ${path}`, path, operation })),
  );
}

/** Every (code, status) the operator's error catalog can make, read from its source. */
function catalogFromSource(): Map<string, number> {
  const dir = resolve(import.meta.dirname, '../../src/operator');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const found = new Map<string, number>();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    for (const m of text.matchAll(/ApiError\(\s*(\d{3}),\s*'([A-Z_]+)'/g)) found.set(m[2]!, Number(m[1]));
    for (const m of text.matchAll(/notFound\('([A-Z_]+)'/g)) found.set(m[1]!, 404);
  }
  return found;
}

function refsIn(value: unknown, into: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) refsIn(v, into);
  else if (typeof value === 'object' && value !== null) {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string') into.push(v);
      else refsIn(v, into);
    }
  }
  return into;
}

describe(`/openapi.json is complete on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let op: RunningOperator;
  let api: ApiClient;
  let document: Document;
  beforeAll(async () => {
    t = await createTestDb();
    op = await startTestOperator(t.db);
    api = new ApiClient(op.url);
    document = await api.ok<Document>('/openapi.json');
  });
  afterAll(async () => {
    await op?.close();
    await t?.cleanup();
  });

  it('every operation has an operationId (unique), a summary and a row in ROUTE_ERRORS', () => {
    const operations = operationsOf(document);
    expect(operations.length).toBeGreaterThan(60);
    expect(operations.filter((o) => !o.operation.operationId).map((o) => o.key)).toEqual([]);
    expect(operations.filter((o) => !o.operation.summary?.trim()).map((o) => o.key)).toEqual([]);
    const ids = operations.map((o) => o.operation.operationId!);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    expect(ids.filter((id) => !(id in ROUTE_ERRORS))).toEqual([]);
    // A row for an operation that no longer exists is a stale document.
    expect(Object.keys(ROUTE_ERRORS).filter((id) => !ids.includes(id))).toEqual([]);
  });

  it('every operation describes its success body and its error responses', () => {
    for (const { key, operation } of operationsOf(document)) {
      const success = Object.entries(operation.responses).filter(([status]) => /^2\d\d$/.test(status));
      expect(success.length, `${key} has a 2xx response`).toBeGreaterThan(0);
      for (const [status, response] of success) {
        const schemas = Object.values(response.content ?? {}).map((c) => c.schema);
        expect(schemas.length, `${key} ${status} has a schema`).toBeGreaterThan(0);
        expect(response.description, `${key} ${status}`).not.toBe('Default Response');
      }
      const failures = Object.entries(operation.responses).filter(([status]) => /^[45]\d\d$/.test(status));
      expect(failures.length, `${key} documents its errors`).toBeGreaterThan(0);
      for (const [status, response] of failures) {
        // "`NODE_NOT_FOUND`, `…`": each code named is in the catalog with this status.
        const codes = [...response.description.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!);
        expect(codes.length, `${key} ${status} names its codes`).toBeGreaterThan(0);
        for (const code of codes) expect(ERROR_STATUS[code as keyof typeof ERROR_STATUS], `${key}: ${code}`).toBe(Number(status));
      }
    }
  });

  it('the documented codes are the catalog: every code the source can make, with its status', () => {
    const source = catalogFromSource();
    expect(Object.fromEntries([...source].sort())).toEqual(Object.fromEntries(Object.entries(ERROR_STATUS).sort()));
  });

  it('marks probes and metrics unauthenticated, everything else bearer', () => {
    for (const { key, path, operation } of operationsOf(document)) {
      const open = path === '/health' || path.startsWith('/health/') || path === '/metrics';
      if (open) expect(operation.security, key).toEqual([]);
      else expect(operation.security, key).toBeUndefined();
    }
  });

  it('names its servers and license, and refers to nothing outside itself', () => {
    expect(document.servers?.length).toBeGreaterThan(0);
    expect(document.info.license?.name).toBe('Apache-2.0');
    expect(refsIn(document).filter((ref) => !ref.startsWith('#/'))).toEqual([]);
  });

  it('answers with what it documents: a missing node is the 404 getNode lists', async () => {
    const getNode = document.paths['/api/v1/nodes/{id}']?.get;
    expect(getNode?.responses['404']?.description).toContain('`NODE_NOT_FOUND`');
    expectApiError(await api.get('/api/v1/nodes/no-such-node'), 404, 'NODE_NOT_FOUND');
    const health = await api.ok<{ status: string; engine: string }>('/health');
    expect(health.engine).toBe(TEST_ENGINE === 'postgres' ? 'postgres' : 'pglite');
  });
});
