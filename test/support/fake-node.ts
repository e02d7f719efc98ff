// A scripted agent: it speaks the real agent protocol to a real operator, but the test decides
// what it reports. That keeps instance health under the test's control without processes.
import type { ActualInstance, BootSlotsReport, DesiredState, InstallReport } from '../../src/domain/protocol.js';
import type { ApiClient } from './operator.js';

export interface FakeNodeSpec {
  hostname: string;
  region?: string;
  max_instances?: number;
  labels?: Record<string, string>;
  agent_url?: string;
}

export class FakeNode {
  /** What the node reports for each instance; every heartbeat carries all of it. */
  readonly actual = new Map<string, ActualInstance>();
  generation = 0;
  /** Component versions every heartbeat reports (a rollout's health gate reads them). */
  components: Record<string, string> = { 'node-agent': 'test' };
  /** Install reports every heartbeat carries (none by default). */
  installs: InstallReport[] = [];
  /** The A/B boot slots every heartbeat reports (none by default). */
  slots: BootSlotsReport | undefined;
  /**
   * Behave like an agent that installs at once: after each heartbeat, report every desired
   * component at its desired version from the next heartbeat on (off by default).
   */
  followDesiredComponents = false;
  /**
   * Behave like an agent that starts and stops instances at once: after each heartbeat, report
   * every instance desired running as running and healthy, every one desired stopped (or no
   * longer desired) as stopped, from the next heartbeat on (off by default).
   */
  followDesiredInstances = false;
  private nextPort = 41_000;
  /** The last heartbeat that failed, if any (the background loop keeps going). */
  lastError: string | undefined;
  private loop: { stop: boolean; done: Promise<void> } | undefined;

  private constructor(
    readonly api: ApiClient,
    readonly id: string,
    readonly hostname: string,
    /** The node credential from registration, sent like an agent sends it. */
    readonly credential: string,
  ) {}

  /** Registers through the agent gateway, as an agent does at start. */
  static async register(api: ApiClient, spec: FakeNodeSpec): Promise<FakeNode> {
    const response = await api.post<{ node_id: string; heartbeat_interval_ms: number; node_credential: string }>('/api/v1/agent/register', {
      hostname: spec.hostname,
      region: spec.region ?? 'us-east',
      role: 'worker',
      max_instances: spec.max_instances ?? 4,
      agent_version: 'test',
      protocol_version: 1,
      ...(spec.labels ? { labels: spec.labels } : {}),
      ...(spec.agent_url ? { agent_url: spec.agent_url } : {}),
    });
    if (response.status !== 200) throw new Error(`register ${spec.hostname} answered ${response.status}: ${response.text}`);
    return new FakeNode(api, response.body.node_id, spec.hostname, response.body.node_credential);
  }

  /** Reports the instance running and healthy on `port` from the next heartbeat on. */
  runHealthy(instanceId: string, port: number): void {
    this.actual.set(instanceId, { id: instanceId, status: 'running', healthy: true, pid: 20_000 + (port % 10_000), port });
  }

  report(instance: ActualInstance): void {
    this.actual.set(instance.id, instance);
  }

  reportStopped(instanceId: string): void {
    this.actual.set(instanceId, { id: instanceId, status: 'stopped', healthy: false, pid: null, port: null });
  }

  /** Sends one heartbeat with everything the node reports; returns the desired state it got back. */
  async heartbeat(): Promise<DesiredState> {
    const response = await this.api.post<DesiredState>('/api/v1/agent/heartbeat', {
      node_id: this.id,
      agent_version: 'test',
      protocol_version: 1,
      components: this.components,
      instances: [...this.actual.values()],
      ...(this.installs.length > 0 ? { installs: this.installs } : {}),
      ...(this.slots ? { slots: this.slots } : {}),
      generation: this.generation,
    }, { headers: { 'x-drydock-node-credential': this.credential } });
    if (response.status !== 200) throw new Error(`heartbeat of ${this.hostname} answered ${response.status}: ${response.text}`);
    this.generation = response.body.generation;
    if (this.followDesiredComponents) {
      for (const [name, desired] of Object.entries(response.body.components ?? {})) this.components[name] = desired.version;
    }
    if (this.followDesiredInstances) {
      const wanted = new Map(response.body.instances.map((i) => [i.id, i]));
      for (const [id, want] of wanted) {
        const now = this.actual.get(id);
        if (want.desired === 'running' && now?.status !== 'running') this.runHealthy(id, this.nextPort++);
        if (want.desired === 'stopped' && now?.status !== 'stopped') this.reportStopped(id);
      }
      for (const [id, now] of this.actual) if (!wanted.has(id) && now.status !== 'stopped') this.reportStopped(id);
    }
    return response.body;
  }

  /** Heartbeats every `intervalMs` in the background, like a live agent, until `stopHeartbeats`. */
  startHeartbeats(intervalMs = 250): void {
    if (this.loop) return;
    const loop = { stop: false, done: Promise.resolve() };
    loop.done = (async () => {
      while (!loop.stop) {
        try {
          await this.heartbeat();
          this.lastError = undefined;
        } catch (error) {
          this.lastError = (error as Error).message;
        }
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    })();
    this.loop = loop;
  }

  async stopHeartbeats(): Promise<void> {
    const loop = this.loop;
    this.loop = undefined;
    if (!loop) return;
    loop.stop = true;
    await loop.done;
  }
}
