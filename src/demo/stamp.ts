import { readFileSync, writeFileSync } from 'node:fs';
import { VERSION_LINE } from '../control-plane/operator-artifact.js';

/** A schema migration a drill build brings, named like the built-in ones (NNNN_name.pre|post.sql). */
export interface DrillMigration {
  file: string;
  sql: string;
}

export interface StampOptions {
  /** The copy's agent exits at start (the bad build the circuit-breaker drill catches). */
  brokenAgent?: boolean;
  /** The copy's operator exits at start: it never becomes ready (the bad control-plane build). */
  brokenOperator?: boolean;
  /** Migrations the copy knows beyond the built-in ones: a newer release's expand and contract. */
  drillMigrations?: readonly DrillMigration[];
  /** The copy declares it cannot run beside a newer build's expand migrations. */
  intolerantOfExpand?: boolean;
}

/**
 * Writes a copy of the single-file bundle that reports `version` — the same build stamped as
 * another release, which is what an upgrade drill needs (see StampOptions for the drill's bad
 * builds and the schema changes a newer release brings).
 */
export function stampBundle(source: string, target: string, version: string, options: StampOptions = {}): void {
  const text = readFileSync(source, 'utf8');
  if (!VERSION_LINE.test(text)) throw new Error(`${source} has no version line; rebuild it with \`npm run build\``);
  let stamped = text.replace(VERSION_LINE, `const __drydock_version = ${JSON.stringify(version)};`);
  if (options.brokenAgent) {
    stamped = stamped.replace(
      VERSION_LINE,
      (line) => `${line}\nif (process.argv[2] === 'agent') { console.error('drydock ${version}: broken build, the agent exits at start'); process.exit(1); }`,
    );
  }
  if (options.brokenOperator) {
    stamped = stamped.replace(
      VERSION_LINE,
      (line) => `${line}\nif (process.argv[2] === 'operator') { console.error('drydock ${version}: broken build, the operator exits at start'); process.exit(1); }`,
    );
  }
  if (options.drillMigrations && options.drillMigrations.length > 0) {
    // Read by src/store/migrations/index.ts when the bundle's modules load (after this line).
    stamped = stamped.replace(VERSION_LINE, (line) => `${line}\nglobalThis.__drydock_drill_migrations = ${JSON.stringify(options.drillMigrations)};`);
  }
  if (options.intolerantOfExpand) {
    stamped = stamped.replace(VERSION_LINE, (line) => `${line}\nglobalThis.__drydock_intolerant_of_expand = true;`);
  }
  writeFileSync(target, stamped, { mode: 0o755 });
}
