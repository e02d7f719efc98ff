// A real operator on a fresh test database with signed versions published and InstallingNodes
// heartbeating over HTTP: the set-up several operator tests share (rollouts of `web`).
import type { RunningOperator } from '../../src/operator/server.js';
import { createTestDb, type TestDb } from './db.js';
import { InstallingNode } from './installing-node.js';
import { ApiClient, startTestOperator } from './operator.js';
import { SignedPublisher } from './signed-artifacts.js';

export interface InstallingFleet {
  t: TestDb;
  op: RunningOperator;
  api: ApiClient;
  nodes: InstallingNode[];
  publisher: SignedPublisher;
}

export async function startInstallingFleet(options: {
  /** Versions of `web` published (signed) and blessed before the nodes register. */
  versions: readonly string[];
  hostnames: readonly string[];
  /** What each node runs when it registers. */
  components: Record<string, string>;
  /** Versions that install but fail their health check on every node. */
  broken?: readonly string[];
}): Promise<InstallingFleet> {
  const t = await createTestDb();
  const op = await startTestOperator(t.db);
  const api = new ApiClient(op.url);
  const publisher = new SignedPublisher(() => op.url, () => api);
  for (const version of options.versions) await publisher.publish(version);
  const nodes: InstallingNode[] = [];
  for (const hostname of options.hostnames) {
    const n = await InstallingNode.register(api, hostname, { ...options.components });
    for (const version of options.broken ?? []) n.broken.add(version);
    n.start();
    nodes.push(n);
  }
  return { t, op, api, nodes, publisher };
}

/** Stops what startInstallingFleet started (what of it started: safe in an afterAll after a failed beforeAll). */
export async function stopInstallingFleet(fleet: InstallingFleet | undefined): Promise<void> {
  for (const n of fleet?.nodes ?? []) await n.stop();
  await fleet?.op.close();
  await fleet?.t.cleanup();
}
