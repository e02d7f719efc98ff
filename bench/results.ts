// Where benchmarks keep what they measured: bench/results/<name>.json holds the last 20 runs.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Appends `result` to the runs kept in `file` (the last 20), and says where it wrote. */
export function appendRun(file: string, result: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  let previous: unknown[] = [];
  try {
    previous = (JSON.parse(readFileSync(file, 'utf8')) as { runs?: unknown[] }).runs ?? [];
  } catch {
    previous = [];
  }
  writeFileSync(file, `${JSON.stringify({ runs: [...previous.slice(-19), result] }, null, 2)}\n`);
  console.log(`wrote ${file}`);
}
