import { readFileSync, writeFileSync } from 'node:fs';

// scripts/build.mjs writes the version as this one line at the top of the bundle.
const VERSION_LINE = /^const __drydock_version = "[^"\n]*";$/m;

/**
 * Writes a copy of the single-file bundle that reports `version` — the same build stamped as
 * another release, which is what an upgrade drill needs. `brokenAgent` makes the copy's agent
 * exit at start (the bad build the circuit-breaker drill catches).
 */
export function stampBundle(source: string, target: string, version: string, options: { brokenAgent?: boolean } = {}): void {
  const text = readFileSync(source, 'utf8');
  if (!VERSION_LINE.test(text)) throw new Error(`${source} has no version line; rebuild it with \`npm run build\``);
  let stamped = text.replace(VERSION_LINE, `const __drydock_version = ${JSON.stringify(version)};`);
  if (options.brokenAgent) {
    stamped = stamped.replace(
      VERSION_LINE,
      (line) => `${line}\nif (process.argv[2] === 'agent') { console.error('drydock ${version}: broken build, the agent exits at start'); process.exit(1); }`,
    );
  }
  writeFileSync(target, stamped, { mode: 0o755 });
}
