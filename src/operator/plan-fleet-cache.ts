// The fleet's instances as the plan worker keeps them between dry runs (issue 9, goal 3): at
// 200,000 instances, reading them as JSON took the database ~440 ms and parsing them the worker
// ~200 ms on every plan. A dry run now reads only the rows written since the snapshot the cache
// was built from (plan-snapshot.ts loadInstanceRows) and applies them here. Nodes and
// deployments are read whole every time: heartbeats rewrite nodes, and they are few.
import type { InstanceFacts } from '../domain/rollout/preflight.js';
import type { Instance } from '../domain/types.js';
import type { InstanceRowsText } from '../store/plan-snapshot.js';

/** `[id, deployment_id, node_id, desired, status, volume, volume_expires_at, activity, activity_expires_at]` (plan-snapshot.ts). */
export type InstanceRow = [string, string, string, Instance['desired'], Instance['status'], InstanceFacts['volume'], number | null, string | null, number | null];

/** Instances by id in byte order (the order of `ORDER BY id COLLATE "C"`), with every node and deployment id they name interned. */
export class InstanceTable {
  private rows: InstanceRow[] = [];
  private readonly position = new Map<string, number>();
  private readonly ids = new Map<string, string>();
  /** Facts as of `factsAt`; null once the rows changed. */
  private facts: InstanceFacts[] | null = null;
  private factsAt = Number.NaN;
  /** Whether some row's volume or activity expires: then the facts depend on the clock. */
  private expiring = 0;

  constructor(
    rows: readonly InstanceRow[],
    /** The snapshot the rows are as of: an incremental load must start from it. */
    public cursor: string,
  ) {
    this.rows = rows.map((row) => this.interned(row));
    this.reindex();
  }

  get size(): number {
    return this.rows.length;
  }

  /** The same string object for every equal node or deployment id: a map lookup is then a pointer compare. */
  intern = (id: string): string => {
    const known = this.ids.get(id);
    if (known !== undefined) return known;
    this.ids.set(id, id);
    return id;
  };

  /**
   * Applies the rows written since `cursor` (updated ones replace theirs, new ones are merged in
   * by id). False when more instances are kept than exist (`count`): some were deleted, and
   * `retain` with every id there is must drop them before the table can be trusted.
   */
  apply(changed: readonly InstanceRow[], count: number, cursor: string): boolean {
    const added: InstanceRow[] = [];
    for (const row of changed) {
      const k = this.position.get(row[0]);
      if (k === undefined) added.push(this.interned(row));
      else this.rows[k] = this.interned(row);
    }
    if (added.length > 0) {
      this.rows = mergeById(this.rows, added.sort(byId));
      this.reindex();
    } else if (changed.length > 0) {
      this.facts = null;
      this.expiring = this.rows.filter(expires).length;
    }
    this.cursor = cursor;
    return this.rows.length === count;
  }

  /** Drops every row whose id is not in `ids` (every instance there is): what was deleted. */
  retain(ids: readonly string[]): void {
    const live = new Set(ids);
    const kept = this.rows.filter((row) => live.has(row[0]));
    if (kept.length === this.rows.length) return;
    this.rows = kept;
    this.reindex();
  }

  /** The instances as the plan reads them, each volume and activity report dropped once expired at `now`. */
  factsAsOf(now: number): InstanceFacts[] {
    if (this.facts && (this.expiring === 0 || this.factsAt === now)) return this.facts;
    this.facts = this.rows.map(([id, deploymentId, nodeId, desired, status, volume, volumeExpiresAt, activity, activityExpiresAt]) => ({
      id,
      deploymentId,
      nodeId,
      desired,
      status,
      volume: volumeExpiresAt === null || volumeExpiresAt > now ? volume : null,
      activity: activityExpiresAt === null || activityExpiresAt > now ? activity : null,
    }));
    this.factsAt = now;
    return this.facts;
  }

  private interned(row: InstanceRow): InstanceRow {
    row[1] = this.intern(row[1]);
    row[2] = this.intern(row[2]);
    return row;
  }

  private reindex(): void {
    this.position.clear();
    this.rows.forEach((row, k) => this.position.set(row[0], k));
    this.expiring = this.rows.filter(expires).length;
    this.facts = null;
  }
}

/** Whether the row's volume or activity report expires (then its facts depend on the clock). */
const expires = (row: InstanceRow): boolean => row[6] !== null || row[8] !== null;

function byId(a: InstanceRow, b: InstanceRow): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
}

function mergeById(a: readonly InstanceRow[], b: readonly InstanceRow[]): InstanceRow[] {
  const out: InstanceRow[] = new Array<InstanceRow>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = byId(a[i] as InstanceRow, b[j] as InstanceRow) <= 0 ? (a[i++] as InstanceRow) : (b[j++] as InstanceRow);
  while (i < a.length) out[k++] = a[i++] as InstanceRow;
  while (j < b.length) out[k++] = b[j++] as InstanceRow;
  return out;
}

/** What a plan request names to use the worker's table: which fleet, and the cursor its rows start from (null: they are complete). */
export interface InstanceCacheRef {
  key: string;
  base: string | null;
}

/** Tables kept, one per database the process plans against (tests run several operators in one process). */
export const CACHED_FLEETS = 4;

/**
 * Why rows could not be applied: `complete` — nothing kept for this base (another base, nothing
 * kept, a worker restarted), read every row; `ids` — applied, but instances were deleted since:
 * read what changed since `cursor` (where the table now is) with every id there is.
 */
export type Refusal = { need: 'complete' } | { need: 'ids'; cursor: string };

/** The worker's tables by fleet key, least recently used first. */
export class InstanceCache {
  private readonly tables = new Map<string, InstanceTable>();

  /** The table for `ref` with `instances` applied, or why it cannot be had (the caller reads again as told). */
  table(ref: InstanceCacheRef, instances: InstanceRowsText): InstanceTable | Refusal {
    let table = this.tables.get(ref.key);
    this.tables.delete(ref.key);
    if (instances.complete) {
      table = new InstanceTable(JSON.parse(instances.rows) as InstanceRow[], instances.cursor);
    } else {
      if (!table || ref.base === null || table.cursor !== ref.base) return { need: 'complete' };
      const whole = table.apply(JSON.parse(instances.rows) as InstanceRow[], instances.count, instances.cursor);
      if (!whole && instances.ids !== undefined) table.retain(JSON.parse(instances.ids) as string[]);
      if (table.size !== instances.count) {
        if (instances.ids !== undefined) return { need: 'complete' };
        // Kept at its new cursor (applying was sound): which ids were deleted is all it lacks.
        this.keep(ref.key, table);
        return { need: 'ids', cursor: table.cursor };
      }
    }
    this.keep(ref.key, table);
    return table;
  }

  private keep(key: string, table: InstanceTable): void {
    this.tables.set(key, table);
    for (const old of this.tables.keys()) {
      if (this.tables.size <= CACHED_FLEETS) break;
      this.tables.delete(old);
    }
  }
}
