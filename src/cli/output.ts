import { stringify as toYaml } from 'yaml';
import { ApiCallError } from '../api-client.js';

/** A table column; `wide` ones show only with `-o wide`. */
export type Column<T> = [header: string, value: (row: T) => unknown, wide?: 'wide'];

/** `-o FORMAT` (global): table (default), wide (more columns), json, yaml. `--json` is `-o json`. */
export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];
let outputFormat: OutputFormat = 'table';

export function setOutputFormat(format: OutputFormat): void {
  outputFormat = format;
}

/** A plain aligned table for people; scripts use --json. */
export function formatTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map(([, value]) => formatCell(value(row))));
  const headers = columns.map(([header]) => header);
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

function formatCell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'object') return Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}=${v}`).join(',') || '-';
  return String(value);
}

/** How long ago `at` was, like kubectl's AGE column: 45s, 3m20s, 2h5m, 3d4h. */
export function formatAge(at: string | null | undefined, now = Date.now()): string {
  const then = at ? Date.parse(at) : Number.NaN;
  if (Number.isNaN(then)) return '-';
  const s = Math.max(0, Math.floor((now - then) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
}

/** What a command prints for scripts: JSON, or YAML with `-o yaml`. */
export function printJson(value: unknown): void {
  process.stdout.write(outputFormat === 'yaml' ? toYaml(value) : `${JSON.stringify(value, null, 2)}\n`);
}

/** Prints rows as a table, or as JSON with --json. */
export function printRows<T>(rows: readonly T[], columns: readonly Column<T>[], json: boolean | undefined, empty: string): void {
  if (json || outputFormat === 'json' || outputFormat === 'yaml') {
    printJson(rows);
    return;
  }
  const shown = outputFormat === 'wide' ? columns : columns.filter(([, , wide]) => wide !== 'wide');
  process.stdout.write(rows.length === 0 ? `${empty}\n` : `${formatTable(rows, shown)}\n`);
}

/** The one way a command fails: a message on stderr and a non-zero exit. */
export function exitWithError(error: unknown): never {
  if (error instanceof ApiCallError) {
    process.stderr.write(`error: ${error.message}${error.code ? ` [${error.code}]` : ''}\n`);
    const details = Object.keys(error.details).length > 0 ? JSON.stringify(error.details, null, 2) : '';
    if (details && process.env.DRYDOCK_DEBUG !== undefined) process.stderr.write(`${details}\n`);
    else if (error.details.unplaceable || error.details.issues) process.stderr.write(`${details}\n`);
  } else {
    process.stderr.write(`error: ${(error as Error).message ?? String(error)}\n`);
  }
  process.exit(1);
}
