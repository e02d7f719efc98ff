/** A migration as the binary knows it or as the database recorded it. */
export interface SchemaMigrationRef {
  version: number;
  name: string;
  phase: 'pre' | 'post';
}

export interface SchemaAssessment {
  ready: boolean;
  reason: string;
  /** Known `pre` migrations not applied yet: this binary needs them. */
  behind: SchemaMigrationRef[];
  /** Applied `post` migrations this binary does not know: they removed what it may need. */
  ahead: SchemaMigrationRef[];
}

/**
 * Can this binary serve against the database as it is? Expand/contract rules: unknown `pre`
 * migrations come from a newer binary and only add things, so an older binary stays
 * compatible during a rolling control-plane upgrade; an unknown `post` migration contracted
 * the schema and the older binary must not serve.
 */
export function assessSchema(known: readonly SchemaMigrationRef[], applied: readonly SchemaMigrationRef[]): SchemaAssessment {
  const appliedVersions = new Set(applied.map((m) => m.version));
  const knownVersions = new Set(known.map((m) => m.version));
  const behind = known.filter((m) => m.phase === 'pre' && !appliedVersions.has(m.version));
  const ahead = applied.filter((m) => m.phase === 'post' && !knownVersions.has(m.version));
  if (behind.length > 0) {
    const list = behind.map((m) => `${m.version} ${m.name}`).join(', ');
    return { ready: false, reason: `schema is behind this binary: run \`drydock migrate up\` (pending: ${list})`, behind, ahead };
  }
  if (ahead.length > 0) {
    const list = ahead.map((m) => `${m.version} ${m.name}`).join(', ');
    return {
      ready: false,
      reason: `schema is ahead of this binary: contract migration(s) ${list} were applied by a newer drydock; upgrade this operator`,
      behind,
      ahead,
    };
  }
  return { ready: true, reason: 'schema compatible', behind, ahead };
}

/** A running operator replica as the registry lists it (DESIGN.md §11). */
export interface RegisteredReplica {
  hostname: string;
  region: string;
  version: string;
  /** The newest migration its build knows. */
  knows_schema_version: number;
  /** Its build declares it runs unharmed beside a newer build's expand migrations. */
  tolerates_expand?: boolean;
  live: boolean;
}

/**
 * The live replicas an expand would harm: those whose build does not declare it tolerates a newer
 * build's `pre` migrations. Empty: the target's expand may be applied while they run.
 */
export function replicasBlockingExpand(replicas: readonly RegisteredReplica[]): RegisteredReplica[] {
  return replicas.filter((r) => r.live && r.tolerates_expand === false);
}

/**
 * The live replicas a contract would break: every one whose build does not know the newest
 * `post` migration about to be applied (a contract removes what older builds still use, and
 * such a replica would stop being ready). Empty: contracting is safe for everyone registered.
 */
export function replicasBlockingContract(
  pending: readonly SchemaMigrationRef[],
  replicas: readonly RegisteredReplica[],
): RegisteredReplica[] {
  const contracts = pending.filter((m) => m.phase === 'post');
  if (contracts.length === 0) return [];
  const newest = Math.max(...contracts.map((m) => m.version));
  return replicas.filter((r) => r.live && r.knows_schema_version < newest);
}
