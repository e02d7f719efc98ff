// The plan worker's kept instances (plan-fleet-cache.ts): whatever was inserted, updated or
// deleted between two dry runs, applying the rows written since gives exactly the table a
// complete read gives, or a refusal that makes the caller read everything.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InstanceCache, type InstanceRow, InstanceTable, type Refusal } from '../../src/operator/plan-fleet-cache.js';
import type { InstanceRowsText } from '../../src/store/plan-snapshot.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');

function row(id: string, version: number, extra: Partial<{ node: string; volumeExpiresAt: number | null; activity: string | null; activityExpiresAt: number | null }> = {}): InstanceRow {
  return [id, `dep-${id.length % 3}`, extra.node ?? `node-${version % 4}`, 'running', version % 2 === 0 ? 'running' : 'pending', { replicas: 3, healthy_replicas: version % 3 }, extra.volumeExpiresAt ?? null, extra.activity ?? null, extra.activityExpiresAt ?? null];
}

function text(rows: readonly InstanceRow[], complete: boolean, count: number, cursor: string, ids?: readonly string[]): InstanceRowsText {
  const sorted = [...rows].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { rows: JSON.stringify(sorted), complete, count, cursor, now: NOW, ...(ids ? { ids: JSON.stringify([...ids].sort()) } : {}) };
}

/** The table, or fails the test with the refusal. */
function got(answer: InstanceTable | Refusal): InstanceTable {
  if (!(answer instanceof InstanceTable)) throw new Error(`refused: ${JSON.stringify(answer)}`);
  return answer;
}

/** What a complete read gives for these rows (the table built from nothing else). */
const complete = (rows: Map<string, InstanceRow>, now = NOW) => new InstanceTable(JSON.parse(text([...rows.values()], true, rows.size, 'x').rows) as InstanceRow[], 'x').factsAsOf(now);

const op = fc.oneof(
  fc.record({ kind: fc.constant('upsert' as const), id: fc.stringMatching(/^[a-z0-9-]{1,6}$/), version: fc.nat(99) }),
  fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
);

describe('the plan worker’s kept instances', () => {
  it('apply(rows written since) equals a complete read; after deletions, once every id is given too', () => {
    fc.assert(
      fc.property(fc.array(fc.array(op, { maxLength: 8 }), { minLength: 1, maxLength: 6 }), fc.array(fc.boolean(), { maxLength: 50 }), (rounds, extras) => {
        const db = new Map<string, InstanceRow>();
        for (let k = 0; k < 20; k++) db.set(`i-${k}`, row(`i-${k}`, k));
        const cache = new InstanceCache();
        let cursor = 'c0';
        expect(got(cache.table({ key: 'f', base: null }, text([...db.values()], true, db.size, cursor))).factsAsOf(NOW)).toEqual(complete(db));
        for (const [r, round] of rounds.entries()) {
          const written = new Map<string, InstanceRow>();
          const held = new Set(db.keys());
          for (const o of round) {
            if (o.kind === 'upsert') {
              const next = row(o.id, o.version);
              db.set(o.id, next);
              written.set(o.id, next);
            } else if (db.size > 0) {
              const id = [...db.keys()][o.pick % db.size] as string;
              db.delete(id);
              written.delete(id);
            }
          }
          // The read may bring unchanged rows too (the xmin filter is a superset).
          [...db.values()].forEach((v, k) => {
            if (extras[k] === true) written.set(v[0], v);
          });
          const next = `c${r + 1}`;
          // A row inserted and deleted again between two reads never reached the table.
          const deleted = [...held].some((id) => !db.has(id));
          const table = cache.table({ key: 'f', base: cursor }, text([...written.values()], false, db.size, next));
          if (deleted) {
            // Applied and kept at the new cursor; it asks for every id to drop the deleted ones.
            expect(table).toEqual({ need: 'ids', cursor: next });
            const again = got(cache.table({ key: 'f', base: next }, text([], false, db.size, `${next}'`, [...db.keys()])));
            expect(again.factsAsOf(NOW)).toEqual(complete(db));
            cursor = `${next}'`;
            continue;
          }
          expect(got(table as InstanceTable).factsAsOf(NOW)).toEqual(complete(db));
          expect((table as InstanceTable).cursor).toBe(next);
          cursor = next;
        }
      }),
    );
  });

  it('refuses rows read from another cursor than the one it holds, and a fleet it does not hold', () => {
    const cache = new InstanceCache();
    expect(cache.table({ key: 'f', base: 'c0' }, text([], false, 0, 'c1'))).toEqual({ need: 'complete' });
    cache.table({ key: 'f', base: null }, text([row('a', 1)], true, 1, 'c1'));
    expect(cache.table({ key: 'f', base: 'c0' }, text([], false, 1, 'c2'))).toEqual({ need: 'complete' });
    // Refused once, the table is gone: even its own cursor now needs a complete read.
    expect(cache.table({ key: 'f', base: 'c1' }, text([], false, 1, 'c2'))).toEqual({ need: 'complete' });
    expect(cache.table({ key: 'g', base: 'c1' }, text([], false, 1, 'c2'))).toEqual({ need: 'complete' });
  });

  it('drops deleted rows at once when the ids came with the rows', () => {
    const cache = new InstanceCache();
    cache.table({ key: 'f', base: null }, text([row('a', 1), row('b', 2), row('c', 3)], true, 3, 'c1'));
    const table = got(cache.table({ key: 'f', base: 'c1' }, text([row('d', 4)], false, 3, 'c2', ['a', 'c', 'd'])));
    expect(table.factsAsOf(NOW).map((i) => i.id)).toEqual(['a', 'c', 'd']);
    expect(table.cursor).toBe('c2');
  });

  it('asks for a complete read when the ids it was given still do not add up', () => {
    const cache = new InstanceCache();
    cache.table({ key: 'f', base: null }, text([row('a', 1), row('b', 2)], true, 2, 'c1'));
    expect(cache.table({ key: 'f', base: 'c1' }, text([], false, 1, 'c2'))).toEqual({ need: 'ids', cursor: 'c2' });
    expect(cache.table({ key: 'f', base: 'c2' }, text([], false, 1, 'c3', ['a', 'b']))).toEqual({ need: 'complete' });
    expect(cache.table({ key: 'f', base: 'c3' }, text([], false, 1, 'c4'))).toEqual({ need: 'complete' });
  });

  it('keeps one table per fleet, the least recently used dropped past four', () => {
    const cache = new InstanceCache();
    for (const key of ['a', 'b', 'c', 'd', 'e']) cache.table({ key, base: null }, text([row(`${key}-1`, 1)], true, 1, `${key}0`));
    expect(cache.table({ key: 'a', base: 'a0' }, text([], false, 1, 'a1'))).toEqual({ need: 'complete' });
    expect(got(cache.table({ key: 'e', base: 'e0' }, text([], false, 1, 'e1'))).size).toBe(1);
    expect(got(cache.table({ key: 'b', base: 'b0' }, text([], false, 1, 'b1'))).size).toBe(1);
  });

  it('drops a volume or activity report once it expires, with no row written', () => {
    const table = new InstanceTable([row('a', 1, { volumeExpiresAt: NOW + 1000, activity: 'backup', activityExpiresAt: NOW + 2000 }), row('b', 2)], 'c0');
    expect(table.factsAsOf(NOW).map((i) => [i.volume, i.activity])).toEqual([
      [{ replicas: 3, healthy_replicas: 1 }, 'backup'],
      [{ replicas: 3, healthy_replicas: 2 }, null],
    ]);
    expect(table.factsAsOf(NOW + 1500).map((i) => [i.volume, i.activity])).toEqual([
      [null, 'backup'],
      [{ replicas: 3, healthy_replicas: 2 }, null],
    ]);
    expect(table.factsAsOf(NOW + 2000).map((i) => [i.volume, i.activity])).toEqual([
      [null, null],
      [{ replicas: 3, healthy_replicas: 2 }, null],
    ]);
  });

  it('gives every equal node or deployment id as one string, whichever row brought it', () => {
    const table = new InstanceTable([row('a', 1, { node: 'n-x' })], 'c0');
    table.apply([row('b', 2, { node: ['n', 'x'].join('-') })], 2, 'c1');
    const [a, b] = table.factsAsOf(NOW);
    expect(a?.nodeId).toBe('n-x');
    expect(table.intern(['n', 'x'].join('-'))).toBe(b?.nodeId);
  });
});
