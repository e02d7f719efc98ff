import type { Logger } from 'pino';
import type { ApiClient } from '../api-client.js';
import { EVENT } from '../domain/events.js';
import { OPERATORS_ROUTE } from '../domain/protocol.js';
import type { ControlPlaneClients } from './control-plane-clients.js';

interface Endpoint {
  instance_id: string;
  url: string;
  healthy: boolean;
}

interface Waiter {
  check(): void;
  abandon(): void;
}

/** How a wait for an endpoint ended: with one to send the request to (`served`), or without. */
export type EndpointWait = { endpoint: string; outcome: 'served' } | { endpoint?: undefined; outcome: 'expired' | 'abandoned' };

/**
 * The healthy endpoints of every deployment, as the operator publishes them. Follows the
 * operator's event stream: a withdrawn instance is dropped the moment its event arrives (before
 * the refetch), so it gets no new request; any endpoint change refetches within ~50 ms. A full
 * refresh every few seconds covers a lost stream.
 *
 * `waitForEndpoint` is woken by those same changes (no polling of its own): the edge holds a
 * request there while a deployment has no endpoint to send it to, e.g. during the gap of a live
 * migration's switchover between the source quitting and the target being published.
 */
export class EndpointTable {
  private byDeployment = new Map<string, Endpoint[]>();
  private cursor = new Map<string, number>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private replicasTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private refreshing: Promise<void> | undefined;
  /** Withdrawn instance ids: a refresh that raced the withdrawal must not bring them back. */
  private readonly withdrawn = new Map<string, number>();
  /** The requests in `waitForEndpoint`: each looks again after every change of the table. */
  private readonly waiters = new Set<Waiter>();
  lastRefreshAt: Date | undefined;

  constructor(
    private readonly control: ControlPlaneClients,
    private readonly log: Logger,
    /** Safety-net refresh period (default 5 s). */
    private readonly fullRefreshMs = 5_000,
    /** How often the operator replicas' route is refreshed (default 500 ms; replicas say they stop by leaving the registry). */
    private readonly replicasRefreshMs = 500,
  ) {}

  /** Round-robin over the deployment's healthy endpoints, skipping `exclude` (a failed attempt). */
  pick(deployment: string, exclude?: string): string | undefined {
    const list = (this.byDeployment.get(deployment) ?? []).filter((e) => e.healthy && e.url !== exclude);
    if (list.length === 0) return undefined;
    const next = (this.cursor.get(deployment) ?? 0) % list.length;
    this.cursor.set(deployment, next + 1);
    return list[next]?.url;
  }

  /**
   * Resolves with an endpoint of `deployment` other than `exclude` (picked round-robin) as soon as
   * the table has one: at once if it has one already, else at the first change that brings one.
   * Without one within `timeoutMs` it resolves `expired`; when `signal` aborts (the client went
   * away) or the table stops, `abandoned`. Either way its timer and listeners are gone by then.
   */
  waitForEndpoint(deployment: string, exclude: string | undefined, timeoutMs: number, signal: AbortSignal): Promise<EndpointWait> {
    const now = this.pick(deployment, exclude);
    if (now) return Promise.resolve({ endpoint: now, outcome: 'served' });
    if (signal.aborted || this.abort.signal.aborted) return Promise.resolve({ outcome: 'abandoned' });
    if (timeoutMs <= 0) return Promise.resolve({ outcome: 'expired' });
    return new Promise((resolve) => {
      const finish = (wait: EndpointWait) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        signal.removeEventListener('abort', waiter.abandon);
        resolve(wait);
      };
      const waiter: Waiter = {
        check: () => {
          const endpoint = this.pick(deployment, exclude);
          if (endpoint) finish({ endpoint, outcome: 'served' });
        },
        abandon: () => finish({ outcome: 'abandoned' }),
      };
      const timer = setTimeout(() => finish({ outcome: 'expired' }), timeoutMs);
      this.waiters.add(waiter);
      signal.addEventListener('abort', waiter.abandon, { once: true });
    });
  }

  /** Requests waiting in `waitForEndpoint` right now. */
  get waiting(): number {
    return this.waiters.size;
  }

  /** The control plane's route always exists: before any replica is known its requests wait (then 503), never 404. */
  knows(deployment: string): boolean {
    return deployment === OPERATORS_ROUTE || this.byDeployment.has(deployment);
  }

  snapshot(): Record<string, string[]> {
    return Object.fromEntries([...this.byDeployment].map(([name, list]) => [name, list.filter((e) => e.healthy).map((e) => e.url)]));
  }

  async start(): Promise<void> {
    await this.refresh();
    void this.follow();
    const loop = () => {
      if (this.abort.signal.aborted) return;
      this.refreshTimer = setTimeout(() => void this.refresh().finally(loop), this.fullRefreshMs);
    };
    loop();
    const replicasLoop = () => {
      if (this.abort.signal.aborted) return;
      this.replicasTimer = setTimeout(() => void this.refreshReplicas().finally(replicasLoop), this.replicasRefreshMs);
    };
    replicasLoop();
  }

  stop(): void {
    clearTimeout(this.refreshTimer);
    clearTimeout(this.replicasTimer);
    this.abort.abort();
    for (const waiter of [...this.waiters]) waiter.abandon();
  }

  /** Refetches every deployment's endpoints; concurrent calls share one refresh. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      const client = this.control.current();
      try {
        const deployments = await client.get<{ id: string; name: string }[]>('/api/v1/deployments');
        const next = new Map<string, Endpoint[]>();
        await Promise.all(
          deployments.map(async (d) => {
            const list = await client.get<Endpoint[]>(`/api/v1/deployments/${d.id}/endpoints`);
            next.set(d.name, list.filter((e) => !this.withdrawn.has(e.instance_id)));
          }),
        );
        next.set(OPERATORS_ROUTE, await this.fetchReplicas(client));
        this.byDeployment = next;
        this.lastRefreshAt = new Date();
        this.changed();
      } catch (error) {
        this.control.failed();
        this.log.warn({ err: (error as Error).message, next_operator: this.control.url }, 'endpoint refresh failed; keeping the last known endpoints');
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  /**
   * The control plane is a route too (DESIGN.md §11): every live, ready operator replica. Every
   * ready replica also becomes a candidate for the edge's own connection, should this one go.
   */
  private async fetchReplicas(client: ApiClient): Promise<Endpoint[]> {
    const replicas = await client.get<{ id: string; url: string; ready: boolean; live: boolean; serving?: boolean }[]>('/api/v1/operators');
    this.control.learn(replicas.filter((r) => r.live && r.ready).map((r) => r.url));
    // During a blue-green rollout only one side serves (older operators say nothing: every replica does).
    return replicas.map((r) => ({ instance_id: `operator:${r.id}`, url: r.url, healthy: r.live && r.ready && r.serving !== false }));
  }

  /**
   * The replicas' route alone, more often than the full refresh: a replica that is stopping
   * leaves the registry and keeps answering for its shutdown delay, and the edge must stop
   * sending to it within that time.
   */
  private async refreshReplicas(): Promise<void> {
    const client = this.control.current();
    try {
      const list = await this.fetchReplicas(client);
      this.byDeployment.set(OPERATORS_ROUTE, list);
      this.changed();
    } catch (error) {
      this.control.failed();
      this.log.warn({ err: (error as Error).message, next_operator: this.control.url }, 'operator replica refresh failed; keeping the last known replicas');
    }
  }

  /** Lets every waiting request look again (over a copy: a satisfied one removes itself). */
  private changed(): void {
    for (const waiter of [...this.waiters]) waiter.check();
  }

  private withdraw(instanceId: string): void {
    const now = Date.now();
    this.withdrawn.set(instanceId, now);
    // A withdrawn instance never serves again (a new incarnation gets a new id); forget old ones.
    for (const [id, at] of this.withdrawn) if (now - at > 10 * 60_000) this.withdrawn.delete(id);
    for (const [name, list] of this.byDeployment) this.byDeployment.set(name, list.filter((e) => e.instance_id !== instanceId));
  }

  private async follow(): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        const client = this.control.current();
        const [latest] = await client.get<{ id: number }[]>('/api/v1/events?order=desc&limit=1');
        const stream = client.stream<{ kind: string; instance_id: string | null }>(
          `/api/v1/events/stream?after=${latest?.id ?? 0}&kind_prefix=instance.`,
          this.abort.signal,
        );
        let pending: NodeJS.Timeout | undefined;
        for await (const event of stream) {
          if (event.kind === EVENT.instance.withdrawn && event.instance_id) this.withdraw(event.instance_id);
          clearTimeout(pending);
          pending = setTimeout(() => void this.refresh(), 50);
        }
      } catch (error) {
        if (this.abort.signal.aborted) return;
        this.control.failed();
        // The events missed while reconnecting are covered by the refresh.
        void this.refresh();
        this.log.warn({ err: (error as Error).message, next_operator: this.control.url }, 'event stream lost; reconnecting');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}
