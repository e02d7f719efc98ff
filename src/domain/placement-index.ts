import { isSchedulable } from './node-status.js';
import { isPinned, matchesSelector } from './selector.js';
import type { Deployment, FleetNode, NodeSelector } from './types.js';

// --- The ranking (the only one: pickTargetNode scans with it, PlacementIndex answers it fast) ---

/** Who is asking, as far as the ranking cares. */
export interface RankContext {
  /** Nodes already hosting a replica of this deployment (kept apart when possible). */
  replicaNodes: { has(nodeId: string): boolean };
  /** Use these nodes only when nothing else fits (nodes a rollout has not upgraded yet). */
  avoid?: { has(nodeId: string): boolean } | undefined;
  /** Prefer this region (a migration stays in its region when it can). */
  preferRegion?: string | undefined;
}

/**
 * The yes/no criteria as one integer, in their order of precedence: a replica of this deployment
 * already there (4), a node to avoid (2), outside the preferred region (1). Lower is better.
 */
export function placementTier(node: FleetNode, context: RankContext): number {
  return (
    (context.replicaNodes.has(node.id) ? 4 : 0) +
    (context.avoid?.has(node.id) ? 2 : 0) +
    (context.preferRegion !== undefined && node.region !== context.preferRegion ? 1 : 0)
  );
}

/** Load as a share of the node's capacity, so nodes of different sizes fill evenly. */
export function loadRatio(used: number, node: FleetNode): number {
  return used / node.maxInstances;
}

/** The last tie-break, so the choice is deterministic: hostname (then input order). */
export function byHostname(a: FleetNode, b: FleetNode): number {
  return a.hostname.localeCompare(b.hostname);
}

/**
 * The ranking: tier, then load ratio; negative when the first node is the better one. On a tie
 * the hostname decides (`byHostname`), so the choice is deterministic.
 */
export function compareRank(tierA: number, ratioA: number, tierB: number, ratioB: number): number {
  return tierA - tierB || ratioA - ratioB;
}

// --- The index ----------------------------------------------------------------------------------

/** Something that answers "is this node (by its position in the index's node list) in the set?". */
export interface NodeSet {
  has(k: number): boolean;
}

export interface IndexPick {
  deployment: Pick<Deployment, 'nodeSelector'>;
  /** Positions of nodes already hosting a replica of this deployment. */
  replicaAt: NodeSet;
  preferRegion?: string | undefined;
  /** Positions never to pick (the node being drained). */
  excludeAt?: NodeSet | undefined;
  /** Ignore the deployment's node selector (a forced migration of a pinned instance). */
  ignoreSelector?: boolean | undefined;
}

// Nodes a pick passes over in one heap before it stops walking the heap in order and scans the
// whole heap instead (a selector most nodes miss, or a deployment on most nodes): past this a
// linear pass is cheaper than the best-first walk (O(k log k)), and it bounds a pick at O(nodes).
const WALK_LIMIT = 64;

/**
 * Free slots per region, answering "the best node for this instance" in O(log n): one min-heap
 * of the nodes with room per (region, avoided or not), ordered by load ratio then hostname. The
 * tier is the same for a whole heap but for the replica criterion, so a pick looks at the top of
 * each heap in tier order, walks past only the few nodes that already host a replica (or miss the
 * selector), and compares the heads with `compareRank`, the ranking `pickTargetNode` scans with.
 * Nodes are addressed by their position in `nodes`; the index reads load through `usedAt`, so
 * after changing a node's load the caller calls `touchAt` (or `touch`).
 */
export class PlacementIndex {
  readonly nodes: readonly FleetNode[];
  private readonly usedAt: (k: number) => number;
  private readonly position = new Map<string, number>();
  private readonly ratio: Float64Array;
  /** Rank of each node in hostname order: the heaps compare integers, not strings. */
  private readonly order: Int32Array;
  private readonly regionOf: Int32Array;
  private readonly regions: string[] = [];
  private readonly regionIds = new Map<string, number>();
  private readonly avoided: Uint8Array;
  private readonly closed: Uint8Array;
  /** Heap of each node (region × 2 + avoided), or -1 when it is in none; and its slot there. */
  private readonly groupOf: Int32Array;
  private readonly slot: Int32Array;
  private readonly heaps: number[][] = [];

  constructor(nodes: readonly FleetNode[], usedAt: (k: number) => number, avoidAt?: NodeSet) {
    this.nodes = nodes;
    this.usedAt = usedAt;
    const n = nodes.length;
    this.ratio = new Float64Array(n);
    this.order = new Int32Array(n);
    this.regionOf = new Int32Array(n);
    this.avoided = new Uint8Array(n);
    this.closed = new Uint8Array(n);
    this.groupOf = new Int32Array(n).fill(-1);
    this.slot = new Int32Array(n).fill(-1);
    const sorted = nodes.map((_, k) => k).sort((a, b) => byHostname(nodes[a] as FleetNode, nodes[b] as FleetNode) || a - b);
    sorted.forEach((k, rank) => (this.order[k] = rank));
    nodes.forEach((node, k) => {
      // A duplicate id is a second row for one node: only the first counts (as position() says).
      if (this.position.has(node.id)) this.closed[k] = 1;
      else this.position.set(node.id, k);
      let r = this.regionIds.get(node.region);
      if (r === undefined) {
        r = this.regions.length;
        this.regionIds.set(node.region, r);
        this.regions.push(node.region);
        this.heaps.push([], []);
      }
      this.regionOf[k] = r;
      this.avoided[k] = avoidAt?.has(k) ? 1 : 0;
    });
    for (let k = 0; k < n; k++) this.refresh(k);
  }

  /** Position of the node with this id in `nodes`, or -1. */
  positionOf(nodeId: string): number {
    return this.position.get(nodeId) ?? -1;
  }

  /** Re-reads the node's load after the caller changed it. */
  touch(nodeId: string): void {
    const k = this.positionOf(nodeId);
    if (k >= 0) this.refresh(k);
  }

  touchAt(k: number): void {
    this.refresh(k);
  }

  /** A node to use only when nothing else fits (true), or like any other (false). */
  setAvoidedAt(k: number, avoided: boolean): void {
    if ((this.avoided[k] === 1) === avoided) return;
    this.remove(k);
    this.avoided[k] = avoided ? 1 : 0;
    this.refresh(k);
  }

  /** Takes a node out of every choice (false) until it is opened again, e.g. while its batch drains. */
  setOpenAt(k: number, open: boolean): void {
    this.closed[k] = open ? 0 : 1;
    this.refresh(k);
  }

  /** The node `pickTargetNode` would choose among the open nodes, with this index's avoid flags; null when none has room. */
  pick(request: Omit<IndexPick, 'replicaAt' | 'excludeAt'> & { replicaNodes: ReadonlySet<string>; exclude?: ReadonlySet<string> | undefined }): FleetNode | null {
    const { replicaNodes, exclude } = request;
    const k = this.pickAt({
      ...request,
      replicaAt: { has: (at) => replicaNodes.has((this.nodes[at] as FleetNode).id) },
      excludeAt: exclude && { has: (at) => exclude.has((this.nodes[at] as FleetNode).id) },
    });
    return k < 0 ? null : (this.nodes[k] as FleetNode);
  }

  /** `pick` by position: the position of the chosen node, or -1. */
  pickAt(request: IndexPick): number {
    const { deployment, replicaAt, preferRegion, excludeAt } = request;
    const selector = request.ignoreSelector || !isPinned(deployment.nodeSelector) ? null : deployment.nodeSelector;
    const preferred = preferRegion === undefined ? -1 : (this.regionIds.get(preferRegion) ?? -2);
    this.best = -1;
    this.bestTier = Number.POSITIVE_INFINITY;
    // Heaps in tier order (not avoided before avoided, the preferred region first), so a node
    // without a replica found early makes every heap of a higher tier irrelevant.
    for (let avoided = 0; avoided < 2; avoided++) {
      for (let step = -1; step < this.regions.length; step++) {
        const r = step < 0 ? preferred : step;
        if (r < 0 || (step >= 0 && r === preferred)) continue;
        const heap = this.heaps[r * 2 + avoided] as number[];
        if (heap.length === 0) continue;
        if (selector?.region !== undefined && selector.region !== this.regions[r]) continue;
        const tier = avoided * 2 + (preferRegion !== undefined && r !== preferred ? 1 : 0);
        if (tier > this.bestTier) continue;
        this.bestInHeap(heap, selector, excludeAt, replicaAt);
        this.offer(this.free, tier);
        this.offer(this.taken, tier + 4);
      }
    }
    return this.best;
  }

  // Scratch results of pickAt and bestInHeap: fields, not tuples or closures, because a plan
  // picks hundreds of thousands of times and the garbage showed in its profile.
  private best = -1;
  private bestTier = Number.POSITIVE_INFINITY;
  private free = -1;
  private taken = -1;

  private offer(k: number, tier: number): void {
    if (k < 0) return;
    const diff = this.best < 0 ? -1 : compareRank(tier, this.ratio[k] as number, this.bestTier, this.ratio[this.best] as number);
    if (diff < 0 || (diff === 0 && (this.order[k] as number) < (this.order[this.best] as number))) {
      this.best = k;
      this.bestTier = tier;
    }
  }

  private accepts(k: number, selector: NodeSelector | null, excludeAt: NodeSet | undefined): boolean {
    return !excludeAt?.has(k) && (selector === null || matchesSelector(this.nodes[k] as FleetNode, selector));
  }

  /**
   * Sets `free` to the heap's best accepted node without a replica and `taken` to its best
   * accepted node with one (-1: none), walking the heap best first and stopping at the first
   * node without one.
   */
  private bestInHeap(heap: number[], selector: NodeSelector | null, excludeAt: NodeSet | undefined, replicaAt: NodeSet): void {
    const root = heap[0] as number;
    this.free = -1;
    this.taken = -1;
    if (this.accepts(root, selector, excludeAt) && !replicaAt.has(root)) {
      this.free = root;
      return;
    }
    // Best-first walk: a frontier of heap slots, itself a small heap on the same order.
    const frontier: number[] = [0];
    const less = (a: number, b: number) => this.less(heap[a] as number, heap[b] as number);
    for (let visited = 0; frontier.length > 0; visited++) {
      if (visited === WALK_LIMIT) return this.scanHeap(heap, selector, excludeAt, replicaAt);
      const at = popMin(frontier, less);
      const k = heap[at] as number;
      if (this.accepts(k, selector, excludeAt)) {
        if (!replicaAt.has(k)) {
          this.free = k;
          return;
        }
        if (this.taken < 0) this.taken = k;
      }
      if (2 * at + 1 < heap.length) pushMin(frontier, 2 * at + 1, less);
      if (2 * at + 2 < heap.length) pushMin(frontier, 2 * at + 2, less);
    }
  }

  private scanHeap(heap: number[], selector: NodeSelector | null, excludeAt: NodeSet | undefined, replicaAt: NodeSet): void {
    this.free = -1;
    this.taken = -1;
    for (const k of heap) {
      if (!this.accepts(k, selector, excludeAt)) continue;
      if (!replicaAt.has(k)) {
        if (this.free < 0 || this.less(k, this.free)) this.free = k;
      } else if (this.taken < 0 || this.less(k, this.taken)) this.taken = k;
    }
  }

  /** Order within one heap: the tier is the same there, so the ranking is load ratio, then hostname. */
  private less(a: number, b: number): boolean {
    const diff = compareRank(0, this.ratio[a] as number, 0, this.ratio[b] as number);
    return diff < 0 || (diff === 0 && (this.order[a] as number) < (this.order[b] as number));
  }

  /** Puts the node where its load, status and flags say: in its group's heap, or in none. */
  private refresh(k: number): void {
    const node = this.nodes[k] as FleetNode;
    const used = this.usedAt(k);
    if (this.closed[k] === 1 || !isSchedulable(node) || used >= node.maxInstances) {
      this.remove(k);
      return;
    }
    const before = this.ratio[k] as number;
    this.ratio[k] = loadRatio(used, node);
    const g = (this.regionOf[k] as number) * 2 + (this.avoided[k] as number);
    const heap = this.heaps[g] as number[];
    if (this.groupOf[k] !== g) {
      this.remove(k);
      this.groupOf[k] = g;
      this.slot[k] = heap.length;
      heap.push(k);
      this.siftUp(heap, heap.length - 1);
    } else if ((this.ratio[k] as number) < before) this.siftUp(heap, this.slot[k] as number);
    else this.siftDown(heap, this.slot[k] as number);
  }

  private remove(k: number): void {
    const g = this.groupOf[k] as number;
    if (g < 0) return;
    const heap = this.heaps[g] as number[];
    const at = this.slot[k] as number;
    const last = heap.pop() as number;
    this.groupOf[k] = -1;
    this.slot[k] = -1;
    if (last === k) return;
    heap[at] = last;
    this.slot[last] = at;
    this.siftUp(heap, at);
    this.siftDown(heap, this.slot[last] as number);
  }

  private siftUp(heap: number[], at: number): void {
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.less(heap[at] as number, heap[parent] as number)) return;
      this.swap(heap, at, parent);
      at = parent;
    }
  }

  private siftDown(heap: number[], at: number): void {
    for (;;) {
      const left = 2 * at + 1;
      let min = at;
      if (left < heap.length && this.less(heap[left] as number, heap[min] as number)) min = left;
      if (left + 1 < heap.length && this.less(heap[left + 1] as number, heap[min] as number)) min = left + 1;
      if (min === at) return;
      this.swap(heap, at, min);
      at = min;
    }
  }

  private swap(heap: number[], a: number, b: number): void {
    const ka = heap[a] as number;
    const kb = heap[b] as number;
    heap[a] = kb;
    heap[b] = ka;
    this.slot[kb] = a;
    this.slot[ka] = b;
  }
}

function pushMin(h: number[], value: number, less: (a: number, b: number) => boolean): void {
  h.push(value);
  for (let at = h.length - 1; at > 0; ) {
    const parent = (at - 1) >> 1;
    if (!less(h[at] as number, h[parent] as number)) return;
    [h[at], h[parent]] = [h[parent] as number, h[at] as number];
    at = parent;
  }
}

function popMin(h: number[], less: (a: number, b: number) => boolean): number {
  const top = h[0] as number;
  const last = h.pop() as number;
  if (h.length === 0) return top;
  h[0] = last;
  for (let at = 0; ; ) {
    const left = 2 * at + 1;
    let min = at;
    if (left < h.length && less(h[left] as number, h[min] as number)) min = left;
    if (left + 1 < h.length && less(h[left + 1] as number, h[min] as number)) min = left + 1;
    if (min === at) return top;
    [h[at], h[min]] = [h[min] as number, h[at] as number];
    at = min;
  }
}
