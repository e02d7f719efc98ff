// Builds malformed requests for the operator fuzz test from the routes' own OpenAPI schemas.
// Every request built here is invalid by construction — it carries a poison no route accepts
// (a NUL byte, an overlong or broken path, broken JSON, a wrong content type, absurd nesting),
// or one field that breaks its declared schema — so the operator must refuse each one with a
// 4xx in the catalog shape and change nothing.

/** mulberry32: a tiny seeded PRNG, so a failing run is replayed exactly from its seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  maximum?: number;
  minimum?: number;
  exclusiveMinimum?: number;
  maxLength?: number;
  maxItems?: number;
  additionalProperties?: boolean | JsonSchema;
}

export interface FuzzRoute {
  method: string;
  /** OpenAPI path, e.g. /api/v1/nodes/{id}. */
  path: string;
  params: string[];
  query: Record<string, JsonSchema>;
  body: JsonSchema | undefined;
}

export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** What makes it invalid, for the failure report. */
  poison: string;
}

interface OpenApi {
  paths: Record<string, Record<string, { parameters?: { in: string; name: string; schema?: JsonSchema }[]; requestBody?: { content?: Record<string, { schema?: JsonSchema }> } }>>;
}

/** Every operation of /openapi.json: a route added tomorrow is fuzzed without touching the test. */
export function routesFromOpenApi(spec: OpenApi): FuzzRoute[] {
  const routes: FuzzRoute[] = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const parameters = op.parameters ?? [];
      routes.push({
        method: method.toUpperCase(),
        path,
        params: parameters.filter((p) => p.in === 'path').map((p) => p.name),
        query: Object.fromEntries(parameters.filter((p) => p.in === 'query').map((p) => [p.name, p.schema ?? {}])),
        body: op.requestBody?.content?.['application/json']?.schema,
      });
    }
  }
  return routes;
}

/**
 * Every route Fastify serves, from `app.printRoutes({ commonPrefix: false })` (a tree: each
 * level indents four characters), so a route hidden from /openapi.json is fuzzed too.
 */
export function routesFromPrintout(printout: string): { method: string; path: string }[] {
  const stack: string[] = [];
  const routes: { method: string; path: string }[] = [];
  for (const line of printout.split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([^)]*)\))?/.exec(line);
    if (!match) continue;
    const depth = (match[1] as string).length / 4;
    stack.length = depth;
    stack.push(match[2] as string);
    const path = stack.join('');
    for (const method of (match[3] ?? '').split(',').map((m) => m.trim())) {
      if (method && method !== 'HEAD') routes.push({ method, path: path.replace(/:(\w+)/g, '{$1}') });
    }
  }
  return routes;
}

const NUL_STRINGS = ['\u0000', 'a\u0000b', 'node-agent\u0000', '\u0000'.repeat(50), `${'x'.repeat(300)}\u0000`];
const BAD_PERCENT = ['%', '%zz', '%E0%A4%A', '%%', 'a%2', '%C0%AF', '%FF%FE'];
const WILD_NUMBERS = [2_147_483_648, -1, -2_147_483_649, 1e308, -1e308, 2 ** 53 + 2, 0.5, 1e21, -0];

/** A value of roughly the right shape for `schema` (valid-ish), used as the body around a mutation. */
function plausible(rng: Rng, schema: JsonSchema | undefined, depth = 0): unknown {
  if (!schema || depth > 4) return 'x';
  const variants = schema.anyOf ?? schema.oneOf;
  if (variants) return plausible(rng, rng.pick(variants), depth + 1);
  if (schema.enum) return rng.pick(schema.enum);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'integer':
      return Math.min(schema.maximum ?? 3, Math.max(schema.minimum ?? 0, 3));
    case 'number':
      return 1;
    case 'boolean':
      return rng.chance(0.5);
    case 'array':
      return [plausible(rng, schema.items, depth + 1)];
    case 'object':
      return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, plausible(rng, v, depth + 1)]));
    case 'null':
      return null;
    default:
      return rng.pick(['1.0.0', 'node-agent', 'us-east', 'x', '10s']);
  }
}

/** A value `schema` refuses, or undefined when this generator cannot be sure of one. */
function violating(rng: Rng, schema: JsonSchema): unknown {
  if (schema.anyOf || schema.oneOf) return undefined;
  if (schema.enum) return `${String(rng.pick(schema.enum))}-not-one`;
  const type = Array.isArray(schema.type) ? undefined : schema.type;
  switch (type) {
    case 'integer':
    case 'number': {
      const options: unknown[] = [String(rng.pick(WILD_NUMBERS)), { n: 1 }, [1], true];
      if (schema.maximum !== undefined) options.push(schema.maximum + 1, schema.maximum * 1000 + 1, 2_147_483_648);
      if (schema.minimum !== undefined) options.push(schema.minimum - 1, -2_147_483_649);
      if (type === 'integer') options.push(1.5);
      return rng.pick(options);
    }
    case 'string': {
      const options: unknown[] = [rng.pick(WILD_NUMBERS), { s: 'x' }, ['x'], false, rng.pick(NUL_STRINGS)];
      if (schema.maxLength !== undefined) options.push('z'.repeat(schema.maxLength + 1 + rng.int(5000)));
      return rng.pick(options);
    }
    case 'boolean':
      return rng.pick(['true', 1, 0, 'yes', null, {}]);
    case 'array': {
      const options: unknown[] = [{ not: 'an array' }, 'x', 12];
      if (schema.maxItems !== undefined && schema.maxItems < 2000) options.push(Array.from({ length: schema.maxItems + 1 }, () => plausible(rng, schema.items)));
      return rng.pick(options);
    }
    case 'object':
      return rng.pick([[1, 2], 'x', 7, true]);
    default:
      return undefined;
  }
}

/** A query value `schema` refuses: query values are text, so wrong types mean unparsable numbers. */
function violatingQuery(rng: Rng, schema: JsonSchema): string {
  if (schema.enum) return `${String(rng.pick(schema.enum))}-not-one`;
  const type = Array.isArray(schema.type) ? undefined : schema.type;
  if (type === 'integer' || type === 'number') {
    const options = ['abc', '1e400x', '--1', '0x1g'];
    if (schema.maximum !== undefined) options.push(String(schema.maximum + 1), '1e30');
    if (schema.minimum !== undefined) options.push(String(schema.minimum - 1), '-1e30');
    if (type === 'integer') options.push('1.5');
    return rng.pick(options);
  }
  if (type === 'string' && schema.maxLength !== undefined && rng.chance(0.5)) return 'q'.repeat(schema.maxLength + 1 + rng.int(3000));
  return rng.pick(NUL_STRINGS);
}

/** An object body breaking its schema in exactly one field (wrong type, out of range, overlong). */
function schemaBreakingBody(rng: Rng, schema: JsonSchema | undefined): { body: unknown; field: string } | undefined {
  const objectSchema = (schema?.anyOf ?? schema?.oneOf ?? [schema]).find((s) => s?.type === 'object' && s.properties);
  if (!objectSchema?.properties) return undefined;
  const body = plausible(rng, objectSchema) as Record<string, unknown>;
  const fields = Object.entries(objectSchema.properties);
  for (let tries = 0; tries < 5; tries++) {
    const [name, fieldSchema] = rng.pick(fields);
    const bad = violating(rng, fieldSchema);
    if (bad !== undefined) {
      body[name] = bad;
      return { body, field: name };
    }
  }
  if (objectSchema.additionalProperties === false) {
    body.zz_unknown_field = 1;
    return { body, field: 'zz_unknown_field' };
  }
  return undefined;
}

/** Random JSON of wrong shapes and wild values: what a confused or hostile client sends. */
function junk(rng: Rng, depth = 0): unknown {
  const roll = rng.int(depth > 3 ? 4 : 7);
  switch (roll) {
    case 0:
      return rng.pick(WILD_NUMBERS);
    case 1:
      return 'y'.repeat(rng.int(3) === 0 ? 70_000 : rng.int(40));
    case 2:
      return rng.pick([true, false, null]);
    case 3:
      return rng.pick(['1.0.0', '', 'us-east', '10s', '../../etc/passwd', "'; DROP TABLE nodes; --"]);
    case 4:
      return Array.from({ length: rng.int(4) }, () => junk(rng, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: rng.int(4) }, (_, i) => [rng.pick(['node_id', 'version', 'replicas', 'name', `k${i}`, '__proto__']), junk(rng, depth + 1)]));
  }
}

/** JSON text nested `depth` levels deep (as text: JSON.stringify itself overflows on deep values). */
function nestedJson(depth: number, arrays: boolean): string {
  return arrays ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** Puts a NUL string somewhere inside `value` (a new key or a replaced leaf), at any depth. */
function withNul(rng: Rng, value: unknown): unknown {
  const nul = rng.pick(NUL_STRINGS);
  if (typeof value !== 'object' || value === null) return rng.chance(0.5) ? { [nul]: value } : nul;
  if (Array.isArray(value)) return [...value, withNul(rng, rng.pick([...value, 'leaf']))];
  const entries = Object.entries(value);
  if (entries.length === 0 || rng.chance(0.3)) return { ...value, [rng.chance(0.5) ? nul : 'x']: nul };
  const [key, child] = rng.pick(entries);
  return { ...value, [key]: withNul(rng, child) };
}

const enc = encodeURIComponent;

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function queryString(entries: [string, string][]): string {
  const parts = entries.map(([k, v]) => `${enc(k)}=${enc(v)}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

export interface FuzzTargets {
  /** Real ids per path parameter name (node ids, hostnames, …), so routes reach their handlers. */
  params: Record<string, string[]>;
  tokenFor(route: FuzzRoute): string;
}

/** One malformed request for `route`. */
export function malformedRequest(rng: Rng, route: FuzzRoute, targets: FuzzTargets): FuzzRequest {
  const hasBody = route.method !== 'GET';
  const paramValues = Object.fromEntries(route.params.map((p) => [p, rng.pick(targets.params[p] ?? ['nope'])]));
  const query: [string, string][] = Object.entries(route.query)
    .filter(() => rng.chance(0.4))
    .map(([name, schema]) => [name, String(plausible(rng, schema))]);
  let body: unknown = hasBody ? (route.body ? plausible(rng, route.body) : rng.chance(0.5) ? junk(rng) : undefined) : undefined;
  let rawBody: string | undefined;
  let contentType = 'application/json';
  const rawParams: Record<string, string> = {};

  const poisons: string[] = ['nul-query'];
  if (route.params.length > 0) poisons.push('nul-param', 'long-param', 'bad-percent-param');
  if (hasBody) poisons.push('nul-body', 'deep-body', 'broken-json', 'wrong-content-type', 'schema-field');
  const queryNames = Object.keys(route.query);
  if (queryNames.length > 0) poisons.push('schema-query');
  let poison = rng.pick(poisons);
  if (poison === 'schema-field') {
    const broken = schemaBreakingBody(rng, route.body);
    if (broken) {
      body = broken.body;
      poison = `schema-field:${broken.field}`;
    } else poison = 'nul-body';
  }
  switch (poison) {
    case 'nul-query':
      query.push([rng.pick([...Object.keys(route.query), 'x']), rng.pick(NUL_STRINGS)]);
      break;
    case 'schema-query': {
      const name = rng.pick(queryNames);
      // The broken value replaces a plausible one, so it is the value the schema sees.
      const kept = query.filter(([k]) => k !== name);
      query.length = 0;
      query.push(...kept, [name, violatingQuery(rng, route.query[name] as JsonSchema)]);
      poison = `schema-query:${name}`;
      break;
    }
    case 'nul-param':
    case 'long-param':
    case 'bad-percent-param': {
      const name = rng.pick(route.params);
      const base = paramValues[name] as string;
      if (poison === 'nul-param') paramValues[name] = rng.chance(0.5) ? `${base}\u0000` : rng.pick(NUL_STRINGS);
      else if (poison === 'long-param') paramValues[name] = 'p'.repeat(257 + rng.int(8000));
      else rawParams[name] = `${enc(base).slice(0, rng.int(4))}${rng.pick(BAD_PERCENT)}`;
      break;
    }
    case 'nul-body':
      body = withNul(rng, body ?? {});
      break;
    case 'deep-body':
      rawBody = nestedJson(33 + rng.int(rng.chance(0.2) ? 100_000 : 500), rng.chance(0.5));
      break;
    case 'broken-json': {
      const text = JSON.stringify(body ?? { a: 1 });
      rawBody = rng.pick([text.slice(0, Math.max(1, text.length - 1 - rng.int(5))), `${text},`, `{"a":`, "{'a': 1}", '{"a":1}}', '\u0000', 'nul\u0000']);
      // A truncated number ("0.5" → "0") is still JSON: make sure the text is not.
      if (isJson(rawBody)) rawBody += ' }{';
      break;
    }
    case 'wrong-content-type':
      // Fastify reads text/plain as a string: refused where a JSON body is expected, ignored
      // (rightly) by routes that take no body, so only the former get it.
      contentType = rng.pick([...(route.body ? ['text/plain'] : []), 'application/xml', 'image/png', 'multipart/form-data; boundary=x', 'application/yaml']);
      rawBody = JSON.stringify(body ?? { a: 1 });
      break;
  }

  const path =
    route.path.replace(/\{(\w+)\}/g, (_, name: string) => rawParams[name] ?? enc(paramValues[name] as string)) + queryString(query);
  const headers: Record<string, string> = { authorization: `Bearer ${targets.tokenFor(route)}` };
  let bytes: Buffer | undefined;
  if (hasBody && (rawBody !== undefined || body !== undefined)) {
    bytes = Buffer.from(rawBody ?? JSON.stringify(body), 'utf8');
    headers['content-type'] = contentType;
  }
  return { method: route.method, path, headers, ...(bytes ? { body: bytes } : {}), poison };
}
