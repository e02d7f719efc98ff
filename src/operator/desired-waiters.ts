/**
 * Wakes agents' long-polls when their node's desired state changes. In-process writers call
 * `wake(nodeIds)` right after commit; a one-second poll (server.ts) catches changes made by
 * other operator replicas and by writers that do not wake (the wake is a latency hint, the
 * generation decides).
 */
export class DesiredWaiters {
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Per waiting node, the lowest generation one of its long-polls has already seen. */
  private readonly seen = new Map<string, number>();

  wake(nodeIds: Iterable<string>): void {
    for (const id of nodeIds) {
      const set = this.waiters.get(id);
      if (!set) continue;
      this.waiters.delete(id);
      this.seen.delete(id);
      for (const resolve of set) resolve();
    }
  }

  wakeAll(): void {
    this.wake([...this.waiters.keys()]);
  }

  /** Wakes the waiters of every node whose generation in `current` is past what they have seen. */
  wakeNewer(current: ReadonlyMap<string, number>): void {
    this.wake([...this.seen].filter(([id, seen]) => (current.get(id) ?? -1) > seen).map(([id]) => id));
  }

  /** The nodes someone waits for. */
  waitingNodes(): string[] {
    return [...this.waiters.keys()];
  }

  /**
   * Resolves on the next wake for the node, after `timeoutMs`, or when `signal` aborts.
   * `seenGeneration` (default 0) is the generation the caller already has; `wakeNewer` uses it.
   */
  wait(nodeId: string, timeoutMs: number, signal?: AbortSignal, seenGeneration = 0): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(nodeId) ?? new Set<() => void>();
      this.waiters.set(nodeId, set);
      this.seen.set(nodeId, Math.min(this.seen.get(nodeId) ?? seenGeneration, seenGeneration));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const set = this.waiters.get(nodeId);
        set?.delete(done);
        if (set?.size === 0) {
          this.waiters.delete(nodeId);
          this.seen.delete(nodeId);
        }
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done);
      set.add(done);
    });
  }

  get waiting(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }
}
