// A local control plane that upgrades itself (DESIGN.md §11): control-plane agents in several
// regions, each supervising a real operator replica (component `operator`) on a shared
// PostgreSQL database, behind `drydock edge`, which API clients and the agents themselves use.
// Used by `drydock demo --control-plane` and by the end-to-end test of the same scenario.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packOperatorArtifact } from '../control-plane/operator-artifact.js';
import { freePort } from '../agent/drivers/process-driver.js';
import { ApiClient } from '../api-client.js';
import { OPERATORS_ROUTE } from '../domain/protocol.js';
import { generateSigningKeyPair, signArtifact } from '../signing.js';
import type { ReplicaView } from '../store/operator-replicas.js';
import { fixedPorts } from './fixed-ports.js';
import { isAlive, LocalFleet, waitFor } from './local-fleet.js';
import { type DrillMigration, stampBundle } from './stamp.js';

/** The release the drill upgrades to brings one expand and one contract migration. */
export const DRILL_MIGRATIONS: readonly DrillMigration[] = [
  {
    file: '0900_drill_node_notes.pre.sql',
    sql: 'CREATE TABLE IF NOT EXISTS drill_node_notes (node_id text PRIMARY KEY, note text NOT NULL, legacy_note text)',
  },
  { file: '0901_drill_drop_legacy_note.post.sql', sql: 'ALTER TABLE drill_node_notes DROP COLUMN IF EXISTS legacy_note' },
];

export interface ControlPlaneNode {
  hostname: string;
  region: string;
  /** host:port of its operator replica. */
  listen: string;
  /** The replica's second address: a blue-green rollout starts the new version there. */
  altListen: string;
  dataDir: string;
}

export interface ControlPlaneFleetOptions {
  /** The built bundle (dist/drydock.mjs) every version is stamped from. */
  bin: string;
  dir: string;
  databaseUrl: string;
  regions: readonly string[];
  perRegion: number;
  /** A new operator version must be ready and registered within this (agent --operator-deadline). */
  operatorDeadline?: string;
}

/** The last lines of a process's log, for an error that says why it ended. */
function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return `(no log at ${file})`;
  }
}

/**
 * The operator builds of the drill: 1.0.0 runs first, 2.0.0 brings migrations, 2.0.1 never
 * starts; 2.1.0 and 2.2.0 (which know 2.0.0's migrations) are the blue-green targets, 2.3.0 the
 * region-by-region one.
 */
export const CONTROL_PLANE_VERSIONS = { v1: '1.0.0', v2: '2.0.0', broken: '2.0.1', green: '2.1.0', green2: '2.2.0', v3: '2.3.0' } as const;
type Version = keyof typeof CONTROL_PLANE_VERSIONS;

export class ControlPlaneFleet {
  readonly fleet: LocalFleet;
  readonly nodes: ControlPlaneNode[] = [];
  edgeUrl = '';
  private readonly keys = generateSigningKeyPair();
  private readonly artifacts = {} as Record<Version, string>;

  constructor(private readonly options: ControlPlaneFleetOptions) {
    this.fleet = new LocalFleet({ bin: options.bin, dir: options.dir });
  }

  /** The API through the edge: the one address clients and agents use. */
  get apiUrl(): string {
    return `${this.edgeUrl}/d/${OPERATORS_ROUTE}`;
  }

  client(): ApiClient {
    return new ApiClient({ baseUrl: this.apiUrl, timeoutMs: 15_000 });
  }

  /** Stamps the three builds, packs them as `operator` artifacts and writes the node settings. */
  async prepare(): Promise<void> {
    const dir = this.options.dir;
    writeFileSync(join(dir, 'signing.pub'), this.keys.publicPem);
    writeFileSync(join(dir, 'node-operator.env'), `DATABASE_URL=${this.options.databaseUrl}\n`);
    for (const [name, version] of Object.entries(CONTROL_PLANE_VERSIONS) as [Version, string][]) {
      const bundle = join(dir, `drydock-${version}.mjs`);
      stampBundle(this.options.bin, bundle, version, {
        ...(name === 'v1' ? {} : { drillMigrations: DRILL_MIGRATIONS }),
        ...(name === 'broken' ? { brokenOperator: true } : {}),
      });
      const artifact = join(dir, `operator-${version}.tar.gz`);
      // Each version's own settings ship with it (and come back with it on a rollback).
      await packOperatorArtifact(bundle, artifact, `# operator ${version}\nDRYDOCK_LOG_LEVEL=info\n`);
      this.artifacts[name] = artifact;
    }
  }

  /** Starts the edge, then every control-plane agent with its replica on 1.0.0; waits for all of them. */
  async start(): Promise<void> {
    // Both addresses of every replica from outside the ephemeral range: the second one is bound
    // only by a blue-green rollout, long after the fleet's own connections began (fixed-ports.ts).
    const ports = await fixedPorts(this.options.regions.length * this.options.perRegion * 2, Math.random);
    for (const region of this.options.regions) {
      for (let i = 1; i <= this.options.perRegion; i++) {
        const hostname = `${region}-cp-${i}`;
        this.nodes.push({
          hostname,
          region,
          listen: `127.0.0.1:${ports.shift()}`,
          altListen: `127.0.0.1:${ports.shift()}`,
          dataDir: join(this.options.dir, 'agents', hostname),
        });
      }
    }
    const replicaUrls = this.nodes.map((n) => `http://${n.listen}`).join(',');
    const edgePort = await freePort();
    // The edge follows every replica it was given and every one the registry lists.
    this.fleet.operatorUrl = replicaUrls;
    this.edgeUrl = await this.fleet.startEdge(`127.0.0.1:${edgePort}`);
    const dir = this.options.dir;
    for (const node of this.nodes) {
      this.fleet.spawn(node.hostname, [
        'agent',
        '--operator', this.apiUrl,
        '--hostname', node.hostname,
        '--region', node.region,
        '--role', 'control-plane',
        '--listen', '127.0.0.1:0',
        '--data-dir', node.dataDir,
        '--heartbeat-interval', '1s',
        '--trusted-key', join(dir, 'signing.pub'),
        '--operator-listen', node.listen,
        '--operator-listen-alt', node.altListen,
        '--operator-env-file', join(dir, 'node-operator.env'),
        '--operator-bootstrap', this.artifacts.v1,
        '--operator-deadline', this.options.operatorDeadline ?? '30s',
        `--operator-arg=--trusted-key=${join(dir, 'signing.pub')}`,
        '--operator-arg=--heartbeat-interval=1s',
      ]);
    }
    const expected = this.nodes.length;
    await waitFor(
      `${expected} ready operator replicas`,
      async () => {
        for (const node of this.nodes) {
          const proc = this.fleet.processes.get(node.hostname);
          if (proc && proc.child.exitCode !== null) throw new Error(`agent ${node.hostname} exited: ${logTail(proc.log)}`);
        }
        const replicas = await this.replicas().catch(() => []);
        return replicas.filter((r) => r.live && r.ready).length >= expected ? true : undefined;
      },
      240_000,
      500,
    );
    await waitFor(
      `${expected} control-plane nodes ready`,
      async () => {
        const nodes = await this.client().get<{ status: string }[]>('/api/v1/nodes').catch(() => []);
        return nodes.filter((n) => n.status === 'ready').length >= expected ? true : undefined;
      },
      60_000,
      500,
    );
  }

  replicas(): Promise<ReplicaView[]> {
    return this.client().get<ReplicaView[]>('/api/v1/operators');
  }

  /** Publishes one build, signed, through the edge, and blesses it (rollouts install blessed or live builds). */
  async publish(name: Version): Promise<void> {
    const version = CONTROL_PLANE_VERSIONS[name];
    const bytes = readFileSync(this.artifacts[name]);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const signature = signArtifact(this.keys.privatePem, { component: 'operator', version, kind: 'operator', sha256 });
    const query = new URLSearchParams({ component: 'operator', version, kind: 'operator', signature, public_key: this.keys.publicPem });
    const response = await fetch(`${this.apiUrl}/api/v1/artifacts?${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    if (response.status >= 300) throw new Error(`publishing operator ${version}: HTTP ${response.status} ${await response.text()}`);
    const { id } = (await response.json()) as { id: string };
    await this.client().post(`/api/v1/artifacts/${id}/bless`);
  }

  /** PIDs of the operator replicas the agents run now (from their state files), a blue-green's kept ones included. */
  replicaPids(): number[] {
    return this.nodes.flatMap((node) => {
      const record = this.replicaRecord(node);
      return [record?.pid, record?.previous?.pid].filter((pid): pid is number => typeof pid === 'number' && pid > 0);
    });
  }

  /** What a node's agent recorded of its replica: the current one and, during a blue-green, the kept one. */
  replicaRecord(node: ControlPlaneNode): { pid: number; version: string; listen?: string; previous?: { pid: number; version: string } } | undefined {
    try {
      return JSON.parse(readFileSync(join(node.dataDir, 'operator-replica.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Stops agents and the edge, then every operator replica (they outlive their agents by design). */
  async stop(): Promise<number[]> {
    const replicas = new Set(this.replicaPids());
    await this.fleet.stop();
    for (const pid of this.replicaPids()) replicas.add(pid);
    for (const pid of replicas) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Gone already.
      }
    }
    await waitFor('operator replicas to stop', async () => ([...replicas].some(isAlive) ? undefined : true), 30_000).catch(() => {
      for (const pid of replicas) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    });
    return [...replicas];
  }
}
