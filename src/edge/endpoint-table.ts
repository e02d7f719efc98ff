import type { Logger } from 'pino';
import type { ApiClient } from '../api-client.js';
import { EVENT } from '../domain/events.js';

interface Endpoint {
  instance_id: string;
  url: string;
  healthy: boolean;
}

/**
 * The healthy endpoints of every deployment, as the operator publishes them. Follows the
 * operator's event stream: a withdrawn instance is dropped the moment its event arrives (before
 * the refetch), so it gets no new request; any endpoint change refetches within ~50 ms. A full
 * refresh every few seconds covers a lost stream.
 */
export class EndpointTable {
  private byDeployment = new Map<string, Endpoint[]>();
  private cursor = new Map<string, number>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private refreshing: Promise<void> | undefined;
  /** Withdrawn instance ids: a refresh that raced the withdrawal must not bring them back. */
  private readonly withdrawn = new Map<string, number>();
  lastRefreshAt: Date | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly log: Logger,
    /** Safety-net refresh period (default 5 s). */
    private readonly fullRefreshMs = 5_000,
  ) {}

  /** Round-robin over the deployment's healthy endpoints, skipping `exclude` (a failed attempt). */
  pick(deployment: string, exclude?: string): string | undefined {
    const list = (this.byDeployment.get(deployment) ?? []).filter((e) => e.healthy && e.url !== exclude);
    if (list.length === 0) return undefined;
    const next = (this.cursor.get(deployment) ?? 0) % list.length;
    this.cursor.set(deployment, next + 1);
    return list[next]?.url;
  }

  knows(deployment: string): boolean {
    return this.byDeployment.has(deployment);
  }

  snapshot(): Record<string, string[]> {
    return Object.fromEntries([...this.byDeployment].map(([name, list]) => [name, list.filter((e) => e.healthy).map((e) => e.url)]));
  }

  async start(): Promise<void> {
    await this.refresh();
    void this.follow();
    const loop = () => {
      this.refreshTimer = setTimeout(() => void this.refresh().finally(loop), this.fullRefreshMs);
    };
    loop();
  }

  stop(): void {
    clearTimeout(this.refreshTimer);
    this.abort.abort();
  }

  /** Refetches every deployment's endpoints; concurrent calls share one refresh. */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const deployments = await this.client.get<{ id: string; name: string }[]>('/api/v1/deployments');
        const next = new Map<string, Endpoint[]>();
        await Promise.all(
          deployments.map(async (d) => {
            const list = await this.client.get<Endpoint[]>(`/api/v1/deployments/${d.id}/endpoints`);
            next.set(d.name, list.filter((e) => !this.withdrawn.has(e.instance_id)));
          }),
        );
        this.byDeployment = next;
        this.lastRefreshAt = new Date();
      } catch (error) {
        this.log.warn({ err: (error as Error).message }, 'endpoint refresh failed; keeping the last known endpoints');
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
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
        const [latest] = await this.client.get<{ id: number }[]>('/api/v1/events?order=desc&limit=1');
        const stream = this.client.stream<{ kind: string; instance_id: string | null }>(
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
        this.log.warn({ err: (error as Error).message }, 'event stream lost; reconnecting');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}
