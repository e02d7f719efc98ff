import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EVENT, EVENT_CATALOG, isEventKind } from '../../src/domain/events.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const CATALOG_FILE = 'domain/events.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx|js|mjs)$/.test(entry.name) ? [path] : [];
  });
}

const SUBJECTS = [...new Set(Object.keys(EVENT_CATALOG).map((kind) => kind.split('.')[0]))];
const QUOTED_DOTTED = /(['"`])([a-z][a-z0-9_]*\.[a-z0-9_]+)\1/g;
// `kind: 'x.y'`, `kind: cond ? 'x.y' : 'x.z'`: the expression up to the next comma, brace or line end.
const KIND_EXPRESSION = /\bkind:\s*([^,}\n]+)/g;
// Any quoted `<subject>.<name>` with a subject events use, wherever it is: tables of kinds
// (`{ bless: 'artifact.blessed' }`), arguments (`to('running', 'rollout.approved')`), SQL.
const SUBJECT_LITERAL = new RegExp(`(['"\`])((?:${SUBJECTS.join('|')})\\.[a-z0-9_]+)\\1`, 'g');
// File names are not events ('node.js', 'rollout.yaml').
const NOT_A_KIND = /\.(ts|js|mjs|json|ya?ml|md|sql|txt|log|sh|html|css)$/;

/** Event kinds written as string literals in `text`. */
function kindLiterals(text: string): string[] {
  const found = new Set<string>();
  for (const [, expression] of text.matchAll(KIND_EXPRESSION)) {
    for (const [, , literal] of (expression as string).matchAll(QUOTED_DOTTED)) found.add(literal as string);
  }
  for (const [, , literal] of text.matchAll(SUBJECT_LITERAL)) found.add(literal as string);
  return [...found].filter((literal) => !NOT_A_KIND.test(literal));
}

describe('event catalog', () => {
  it('finds kind literals the ways code writes them', () => {
    const sample = [
      "events.push({ kind: 'rollout.batch_started', data: {} });",
      'const e = { kind: "node.drained" };',
      "kind: c.replaces ? 'instance.replacement_placed' : 'instance.placed',",
      "return to('running', 'rollout.approved');",
      "WHERE s.kind = 'rollout.node_started'",
      "{ kind: 'plan', options: [] }, import x from './node.js'",
    ].join('\n');
    expect(kindLiterals(sample).sort()).toEqual(['instance.placed', 'instance.replacement_placed', 'node.drained', 'rollout.approved', 'rollout.batch_started', 'rollout.node_started']);
  });

  it('holds every event kind used anywhere under src/', () => {
    const missing: string[] = [];
    let scanned = 0;
    for (const file of sourceFiles(SRC)) {
      const name = relative(SRC, file).split('\\').join('/');
      if (name === CATALOG_FILE) continue;
      scanned++;
      for (const kind of kindLiterals(readFileSync(file, 'utf8'))) {
        if (!isEventKind(kind)) missing.push(`${kind} (src/${name})`);
      }
    }
    expect(scanned).toBeGreaterThan(50);
    expect(missing, 'add each to EVENT_CATALOG and EventData in src/domain/events.ts').toEqual([]);
  });

  it('names each kind <subject>.<what happened>, describes it, and has a constant that spells it', () => {
    for (const [kind, description] of Object.entries(EVENT_CATALOG)) {
      expect(kind).toMatch(/^[a-z]+\.[a-z_]+$/);
      expect(description.length, kind).toBeGreaterThan(10);
      const [subject, name] = kind.split('.') as [string, string];
      expect((EVENT as unknown as Record<string, Record<string, string>>)[subject]?.[name]).toBe(kind);
    }
    expect(EVENT.node.registered).toBe('node.registered');
    expect(EVENT.rollout.circuit_breaker_tripped).toBe('rollout.circuit_breaker_tripped');
    expect(isEventKind('node.nonexistent')).toBe(false);
    expect(isEventKind('toString')).toBe(false);
  });
});
