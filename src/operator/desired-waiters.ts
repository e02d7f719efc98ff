/**
 * Wakes agents' long-polls when their node's desired state changes. In-process writers call
 * `wake(nodeIds)` right after commit; a one-second poll of generations catches changes made
 * by other operator replicas (the wake is a latency hint, the generation decides).
 */
export class DesiredWaiters {
  private readonly waiters = new Map<string, Set<() => void>>();

  wake(nodeIds: Iterable<string>): void {
    for (const id of nodeIds) {
      const set = this.waiters.get(id);
      if (!set) continue;
      this.waiters.delete(id);
      for (const resolve of set) resolve();
    }
  }

  wakeAll(): void {
    this.wake([...this.waiters.keys()]);
  }

  /** Resolves on the next wake for the node, after `timeoutMs`, or when `signal` aborts. */
  wait(nodeId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(nodeId) ?? new Set<() => void>();
      this.waiters.set(nodeId, set);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiters.get(nodeId)?.delete(done);
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
