import { ApiClient } from '../api-client.js';

/**
 * The edge's connection to the control plane (DESIGN.md §11): the operator URLs it was given,
 * plus every replica the registry lists, tried in turn. While one answers the edge stays on it;
 * when it fails (a replica restarting in a control-plane rollout), the next call goes to the
 * next candidate, so the endpoint table keeps following the fleet through the upgrade.
 */
export class ControlPlaneClients {
  private readonly configured: string[];
  private learned: string[] = [];
  private index = 0;
  private readonly clients = new Map<string, ApiClient>();

  constructor(
    urls: readonly string[],
    private readonly token: string | undefined,
    private readonly timeoutMs = 10_000,
  ) {
    if (urls.length === 0) throw new Error('the edge needs at least one operator URL');
    this.configured = urls.map((u) => u.replace(/\/+$/, ''));
  }

  private get candidates(): string[] {
    return [...new Set([...this.configured, ...this.learned])];
  }

  /** The URL calls go to now. */
  get url(): string {
    const list = this.candidates;
    return list[this.index % list.length] as string;
  }

  current(): ApiClient {
    const url = this.url;
    let client = this.clients.get(url);
    if (!client) {
      client = new ApiClient({ baseUrl: url, token: this.token, timeoutMs: this.timeoutMs });
      this.clients.set(url, client);
    }
    return client;
  }

  /** The current one failed: the next call tries the next candidate. */
  failed(): void {
    this.index = (this.index + 1) % this.candidates.length;
  }

  /** The ready replicas the registry lists now (their advertised URLs) become candidates too. */
  learn(urls: readonly string[]): void {
    const keep = this.url;
    this.learned = urls.map((u) => u.replace(/\/+$/, ''));
    for (const url of this.clients.keys()) if (!this.candidates.includes(url)) this.clients.delete(url);
    const at = this.candidates.indexOf(keep);
    this.index = at >= 0 ? at : 0;
  }
}
