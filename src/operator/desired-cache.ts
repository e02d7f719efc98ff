import type { DesiredState } from '../domain/protocol.js';
import type { Db } from '../store/db.js';
import { loadDesiredStates } from '../store/desired-state.js';
import { generationsOf } from '../store/nodes.js';

/** The full desired state of one node, read from the database (every reply carries all of it, DESIGN.md §7). */
export async function loadDesiredState(db: Db, nodeId: string): Promise<DesiredState | undefined> {
  return (await loadDesiredStates(db, [nodeId])).get(nodeId);
}

type Load = Promise<Map<string, DesiredState>>;

/**
 * Desired state per node, kept in memory by generation (DESIGN.md §13): a heartbeat reply is
 * served without a read while the node's generation has not moved. The caller says which
 * generation it knows the node is at (the heartbeat write returns it); an entry at that
 * generation or later is served, an older one is loaded again. An entry is never served for a
 * generation newer than its own, so a change made by any replica shows in the first reply
 * whose write saw the bumped generation.
 *
 * Misses that arrive together (an operator start, a rollout batch bumping many nodes) are
 * loaded together: one batch of three statements per event-loop turn, not three per node.
 */
export class DesiredCache {
  private readonly entries = new Map<string, DesiredState>();
  private batch: { ids: Set<string>; done: Load } | undefined;
  /** Replies served from memory, and nodes loaded from the database (tests and metrics read them). */
  hits = 0;
  loads = 0;

  constructor(private readonly db: Db) {}

  /** The desired state of a node at `generation` or later; undefined when the node does not exist. */
  async atLeast(nodeId: string, generation: number): Promise<DesiredState | undefined> {
    const cached = this.entries.get(nodeId);
    if (cached && cached.generation >= generation) {
      this.hits++;
      return cached;
    }
    return this.load(nodeId);
  }

  /** The node's current desired state: one cheap read of its generation, then memory when it has not moved. */
  async current(nodeId: string): Promise<DesiredState | undefined> {
    const generation = (await generationsOf(this.db, [nodeId])).get(nodeId);
    if (generation === undefined) {
      this.entries.delete(nodeId);
      return undefined;
    }
    return this.atLeast(nodeId, generation);
  }

  private async load(nodeId: string): Promise<DesiredState | undefined> {
    // A batch already running may have read this node's generation before the caller's write
    // committed: only a batch that has not started yet is joined.
    if (!this.batch) {
      const ids = new Set<string>();
      const done: Load = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.batch?.ids === ids) this.batch = undefined;
        return loadDesiredStates(this.db, [...ids]);
      });
      this.batch = { ids, done };
    }
    this.batch.ids.add(nodeId);
    const loaded = await this.batch.done;
    const desired = loaded.get(nodeId);
    this.loads++;
    if (!desired) this.entries.delete(nodeId);
    else if ((this.entries.get(nodeId)?.generation ?? -1) <= desired.generation) this.entries.set(nodeId, desired);
    return desired;
  }
}
