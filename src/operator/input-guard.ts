// One check at the edge for what no route can ever want: a NUL byte, or JSON nested absurdly
// deep. Postgres text and jsonb refuse U+0000 (SQLSTATE 22021 / 22P05), so a NUL that got past
// the schemas would surface as a database error — a 500 for a user's mistake, or a failed
// heartbeat batch that takes other nodes' reports down with it. Checking every request here,
// before validation, covers routes that exist today and routes added tomorrow, including
// free-form bodies (the rollout spec, parsed later by the domain).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errors } from './errors.js';

/** Deeper JSON than this is refused: no drydock body nests past ~6 levels; this is ample. */
export const MAX_INPUT_DEPTH = 32;
/** Report at most this many offending fields; one is enough to fix, a few help. */
const MAX_ISSUES = 10;

interface Issue {
  path: string;
  message: string;
}

/**
 * `body.instances.0.message`: the same dotted form the schema errors use, with a NUL inside a
 * key shown as \u0000 so the path itself is printable.
 */
function childPath(parent: string, key: string | number): string {
  return `${parent}.${String(key).replaceAll('\u0000', '\\u0000')}`;
}

function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  if (Array.isArray(value)) return true;
  if (typeof value !== 'object' || value === null) return false;
  // Request streams and Buffers (artifact uploads) are not inspected: they are bytes, not text.
  // (Parsed params and queries are objects with a bare prototype of their own, so the test is
  // "not bytes", not "a plain Object".)
  return !ArrayBuffer.isView(value) && typeof (value as { pipe?: unknown }).pipe !== 'function';
}

/**
 * Finds NUL bytes in keys and string values at any depth, and nesting deeper than
 * MAX_INPUT_DEPTH. Iterative on purpose: a recursive walk would overflow the stack on the very
 * input it exists to refuse.
 */
export function findUnsafeInput(root: unknown, rootPath: string): Issue[] {
  const issues: Issue[] = [];
  const stack: { value: unknown; path: string; depth: number }[] = [{ value: root, path: rootPath, depth: 0 }];
  while (stack.length > 0 && issues.length < MAX_ISSUES) {
    const { value, path, depth } = stack.pop() as { value: unknown; path: string; depth: number };
    if (typeof value === 'string') {
      if (value.includes('\u0000')) issues.push({ path, message: 'contains a NUL byte (\\u0000), which no field accepts' });
      continue;
    }
    if (!isContainer(value)) continue;
    if (depth >= MAX_INPUT_DEPTH) {
      issues.push({ path, message: `nested deeper than ${MAX_INPUT_DEPTH} levels` });
      continue;
    }
    const entries: [string | number, unknown][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    for (const [key, child] of entries) {
      const at = childPath(path, key);
      if (typeof key === 'string' && key.includes('\u0000')) {
        issues.push({ path: at, message: 'this key contains a NUL byte (\\u0000), which no field accepts' });
        continue;
      }
      stack.push({ value: child, path: at, depth: depth + 1 });
    }
  }
  return issues;
}

/** Every part of a request a route may read, in the order they are reported. */
function requestParts(req: FastifyRequest): [string, unknown][] {
  return [
    ['params', req.params],
    ['query', req.query],
    ['headers', req.headers],
    ['body', req.body],
  ];
}

/**
 * Refuses a request carrying a NUL byte or absurd nesting anywhere with 400 VALIDATION_FAILED,
 * naming each field (`query.region`, `body.instances.0.message`), before any route or
 * database sees it. Runs after parsing (so the body is the parsed JSON) and before schemas.
 */
export function registerInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (req) => {
    const issues = requestParts(req).flatMap(([name, value]) => findUnsafeInput(value, name));
    if (issues.length > 0) throw errors.validation({ issues: issues.slice(0, MAX_ISSUES) });
  });
}
