/**
 * A binary min-heap of (time, item): when the next drain or install of a simulated fleet ends,
 * without looking at every node under way on every tick (hundreds at 10,000 nodes). Entries are
 * never removed early: a caller checks a popped entry still stands (its timer may have been
 * replaced since), which costs one check per replaced timer.
 */
export class TimerHeap<T> {
  private readonly times: number[] = [];
  private readonly items: T[] = [];

  get size(): number {
    return this.times.length;
  }

  push(time: number, item: T): void {
    let i = this.times.length;
    this.times.push(time);
    this.items.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.times[parent] as number) <= time) break;
      this.times[i] = this.times[parent] as number;
      this.items[i] = this.items[parent] as T;
      i = parent;
    }
    this.times[i] = time;
    this.items[i] = item;
  }

  /** The earliest time (null: empty). */
  peekTime(): number | null {
    return this.times.length > 0 ? (this.times[0] as number) : null;
  }

  peekItem(): T | undefined {
    return this.items[0];
  }

  pop(): void {
    const lastTime = this.times.pop() as number;
    const lastItem = this.items.pop() as T;
    const n = this.times.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && (this.times[child + 1] as number) < (this.times[child] as number)) child++;
      if ((this.times[child] as number) >= lastTime) break;
      this.times[i] = this.times[child] as number;
      this.items[i] = this.items[child] as T;
      i = child;
    }
    this.times[i] = lastTime;
    this.items[i] = lastItem;
  }
}
