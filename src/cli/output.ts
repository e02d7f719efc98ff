import { ApiCallError } from '../api-client.js';

export type Column<T> = [header: string, value: (row: T) => unknown];

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

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints rows as a table, or as JSON with --json. */
export function printRows<T>(rows: readonly T[], columns: readonly Column<T>[], json: boolean | undefined, empty: string): void {
  if (json) {
    printJson(rows);
    return;
  }
  process.stdout.write(rows.length === 0 ? `${empty}\n` : `${formatTable(rows, columns)}\n`);
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
