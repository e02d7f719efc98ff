import type { NodeFacts } from '../domain/rollout/model.js';
import type { Db } from './db.js';

/** The facts a rollout decides on for its nodes: liveness, cordon, drain, versions, installs, instance health. */
export async function loadNodeFacts(db: Db, nodeIds: readonly string[], component: string, components: readonly string[] = [component]): Promise<Map<string, NodeFacts>> {
  const rows = await db.query<{
    id: string;
    status: NodeFacts['status'];
    cordoned: boolean;
    drain_state: NodeFacts['drainState'];
    drain_message: string | null;
    version: string | null;
    install_version: string | null;
    install_phase: NonNullable<NodeFacts['install']>['phase'] | null;
    install_reason: string | null;
    install_retryable: boolean | null;
    install_at: Date | null;
    unhealthy: number;
  }>(
    `SELECT n.id, n.status, n.cordoned, d.state AS drain_state, d.message AS drain_message,
            n.components ->> $2 AS version,
            ni.version AS install_version, ni.phase AS install_phase, ni.reason AS install_reason, ni.retryable AS install_retryable, ni.updated_at AS install_at,
            (SELECT count(*) FROM instances i WHERE i.node_id = n.id AND i.desired = 'running' AND NOT i.healthy)::int AS unhealthy
       FROM nodes n
       LEFT JOIN drains d ON d.node_id = n.id
       LEFT JOIN node_installs ni ON ni.node_id = n.id AND ni.component = $2
      WHERE n.id = ANY($1::text[])`,
    [nodeIds, component],
  );
  const facts = new Map<string, NodeFacts>(
    rows.map((r) => [
      r.id,
      {
        id: r.id,
        status: r.status,
        cordoned: r.cordoned,
        drainState: r.drain_state,
        drainMessage: r.drain_message ?? '',
        version: r.version ?? undefined,
        install: installOf(r),
        instancesHealthy: r.unhealthy === 0,
      },
    ]),
  );
  if (components.length > 1) {
    // Several targets (spec `targets`): the version and latest install of each component.
    const each = await db.query<InstallColumns & { id: string; component: string; version: string | null }>(
      `SELECT n.id, c.component, n.components ->> c.component AS version,
              ni.version AS install_version, ni.phase AS install_phase, ni.reason AS install_reason, ni.retryable AS install_retryable, ni.updated_at AS install_at
         FROM nodes n CROSS JOIN unnest($2::text[]) AS c(component)
         LEFT JOIN node_installs ni ON ni.node_id = n.id AND ni.component = c.component
        WHERE n.id = ANY($1::text[])`,
      [nodeIds, components],
    );
    const byNode = new Map<string, Record<string, { version: string | undefined; install: NodeFacts['install'] }>>();
    for (const r of each) {
      const list = byNode.get(r.id) ?? byNode.set(r.id, {}).get(r.id)!;
      list[r.component] = { version: r.version ?? undefined, install: installOf(r) };
    }
    for (const [id, list] of byNode) {
      const node = facts.get(id);
      if (node) node.components = list;
    }
  }
  return facts;
}

interface InstallColumns {
  install_version: string | null;
  install_phase: NonNullable<NodeFacts['install']>['phase'] | null;
  install_reason: string | null;
  install_retryable: boolean | null;
  install_at: Date | null;
}

function installOf(r: InstallColumns): NodeFacts['install'] {
  return r.install_version && r.install_phase
    ? { version: r.install_version, phase: r.install_phase, reason: r.install_reason ?? undefined, ...(r.install_retryable === null ? {} : { retryable: r.install_retryable }), at: new Date(r.install_at ?? 0) }
    : undefined;
}

/**
 * Of `versions` of `component`, those no node may be pointed at: archived or never published.
 * A rollout asks for them when a node returns to its previous version.
 */
export async function loadUnavailableVersions(db: Db, component: string, versions: readonly string[]): Promise<Set<string>> {
  const wanted = [...new Set(versions)];
  if (wanted.length === 0) return new Set();
  const rows = await db.query<{ version: string }>(
    `SELECT version FROM artifacts WHERE component = $1 AND version = ANY($2::text[]) AND lifecycle <> 'archived'`,
    [component, wanted],
  );
  const available = new Set(rows.map((r) => r.version));
  return new Set(wanted.filter((v) => !available.has(v)));
}

/** Of the targets, the components whose artifact at the target version reboots the node (an OS image). */
export async function rebootClassTargets(db: Db, targets: readonly { component: string; version: string }[]): Promise<string[]> {
  const rows = await db.query<{ component: string }>(
    `SELECT a.component FROM artifacts a JOIN unnest($1::text[], $2::text[]) AS t(component, version) ON a.component = t.component AND a.version = t.version
      WHERE a.reboot ORDER BY 1`,
    [targets.map((t) => t.component), targets.map((t) => t.version)],
  );
  return rows.map((r) => r.component);
}
