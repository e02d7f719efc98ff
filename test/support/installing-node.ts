// A FakeNode that answers desired components the way the real agent decides (install-plan.ts:
// a lower version only when the desired state marks it a rollback), and reports each install
// like the agent does. Real HTTP heartbeats into a real operator; the test picks which versions
// break on this node (installed, then reverted by the health check).
import { planComponentInstalls } from '../../src/domain/install-plan.js';
import type { DesiredComponent, InstallReport } from '../../src/domain/protocol.js';
import { FakeNode } from './fake-node.js';
import type { ApiClient } from './operator.js';

export class InstallingNode {
  /** Versions that install but fail their health check on this node (the agent reverts them). */
  readonly broken = new Set<string>();
  /** The desired components of the last heartbeat reply. */
  desired: Record<string, DesiredComponent> = {};
  private loop: { stop: boolean; done: Promise<void> } | undefined;
  private readonly handled = new Map<string, string>();

  private constructor(readonly fake: FakeNode) {}

  static async register(api: ApiClient, hostname: string, components: Record<string, string>, region = 'us-east'): Promise<InstallingNode> {
    const fake = await FakeNode.register(api, { hostname, region });
    fake.components = { ...components };
    const node = new InstallingNode(fake);
    await node.tick();
    return node;
  }

  get id(): string {
    return this.fake.id;
  }

  get components(): Record<string, string> {
    return this.fake.components;
  }

  /** One heartbeat, then act on the desired state it returned (reported from the next heartbeat on). */
  async tick(): Promise<void> {
    const reply = await this.fake.heartbeat();
    this.desired = reply.components ?? {};
    const now = new Date();
    const reports = new Map(this.fake.installs.map((r) => [r.component, r]));
    for (const action of planComponentInstalls({ desired: this.desired, installed: this.fake.components, records: {}, now })) {
      if (action.kind !== 'install' && action.kind !== 'refuse') continue;
      const base = { component: action.component, version: action.desired.version, previous_version: action.previous, updated_at: now.toISOString() };
      // The agent keeps a finished record and does not retry the same request (version,
      // rollback flag, request id): its report stays as it was.
      const request = `${action.desired.version}/${action.desired.rollback}/${action.desired.request_id ?? ''}`;
      if (this.handled.get(action.component) === request) continue;
      this.handled.set(action.component, request);
      let report: InstallReport;
      if (action.kind === 'refuse') report = { ...base, phase: 'failed', reason: action.reason };
      else if (this.broken.has(action.desired.version)) report = { ...base, phase: 'reverted', reason: `${action.desired.version} failed its health check at ${base.updated_at}; back on ${action.previous ?? 'nothing'}` };
      else {
        this.fake.components[action.component] = action.desired.version;
        report = { ...base, phase: 'done' };
      }
      reports.set(action.component, report);
    }
    this.fake.installs = [...reports.values()];
  }

  start(intervalMs = 150): void {
    if (this.loop) return;
    const loop = { stop: false, done: Promise.resolve() };
    loop.done = (async () => {
      while (!loop.stop) {
        await this.tick().catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    })();
    this.loop = loop;
  }

  async stop(): Promise<void> {
    const loop = this.loop;
    this.loop = undefined;
    if (!loop) return;
    loop.stop = true;
    await loop.done;
  }
}
