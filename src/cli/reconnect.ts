import { ApiCallError, type StreamRetry } from '../api-client.js';
import { formatDuration, parseDuration } from '../domain/duration.js';

/** First wait after the operator went away; doubles per failed attempt up to MAX_DELAY_MS. */
const FIRST_DELAY_MS = 500;
/** An operator restart takes 1–5 s (embedded engine reopen, migrations check): 5 s keeps the gap short. */
const MAX_DELAY_MS = 5_000;
/** Default of `--reconnect-timeout`: long enough for a replica restart or a leader change, short enough for CI. */
export const DEFAULT_RECONNECT_TIMEOUT = '10m';

/**
 * Failures that say nothing about the request itself, only that no operator answered it: no
 * connection (refused, reset, timed out, a stream cut) or a load balancer with no ready replica.
 * Everything else (404, 401, 403, 400, 409, 500) is an answer and ends the command at once.
 */
export function isConnectionProblem(error: unknown): error is ApiCallError {
  return error instanceof ApiCallError && (error.status === 0 || error.status === 502 || error.status === 503 || error.status === 504);
}

export interface ReconnectOptions {
  /** Give up once the operator has been unreachable this long (ms); 0 gives up at once. */
  timeoutMs: number;
  /** The option's text, for the message when giving up (e.g. "10m"). */
  timeoutText: string;
  /** Where the notices go (stderr by default; the progress bars log them above the bars). */
  notice?: (line: string) => void;
  /** Whether the operator already answered this command once (see `connected`). */
  connected?: boolean;
}

/**
 * The CLI's way of living through an operator restart: while the operator is unreachable it
 * says so on stderr and waits 0.5 s, 1 s, 2 s … 5 s (jittered, so many watchers do not return
 * in step), until `--reconnect-timeout`; then it gives up with a clear error. Only after the
 * operator answered once: a wrong URL at the start still fails at once.
 */
export class Reconnector implements StreamRetry {
  private downSince: number | undefined;
  private attempt = 0;
  private answered: boolean;
  notice: (line: string) => void;

  constructor(private readonly options: ReconnectOptions) {
    this.answered = options.connected ?? false;
    this.notice = options.notice ?? ((line) => process.stderr.write(`${line}\n`));
  }

  /** The operator answered: resets the backoff and says "reconnected" if it had been away. */
  connected(): void {
    this.answered = true;
    if (this.downSince === undefined) return;
    this.notice('reconnected');
    this.downSince = undefined;
    this.attempt = 0;
  }

  /** After a failure: waits before the next try when it is a connection problem; rethrows anything else. */
  async retry(error: unknown): Promise<void> {
    if (!isConnectionProblem(error) || !this.answered) throw error;
    const now = Date.now();
    this.downSince ??= now;
    const reason = typeof error.details.reason === 'string' ? error.details.reason : error.code;
    const left = this.options.timeoutMs - (now - this.downSince);
    if (left <= 0) {
      throw new Error(
        `operator unreachable for ${formatDuration(now - this.downSince)} (${reason}); gave up after --reconnect-timeout ${this.options.timeoutText}. Nothing was cancelled on the operator: run the command again once it is back`,
      );
    }
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Between half and all of the ceiling ("equal jitter"): spread out, never much faster.
    const delay = Math.min(left, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
    this.notice(`operator unreachable (${reason}), reconnecting in ${(delay / 1000).toFixed(1)}s…`);
    await new Promise((r) => setTimeout(r, delay));
  }

  /** Runs `call` until it succeeds, waiting out connection problems. */
  async call<T>(call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const result = await call();
        this.connected();
        return result;
      } catch (error) {
        await this.retry(error);
      }
    }
  }
}

/** A Reconnector from the `--reconnect-timeout` text; a bad duration is refused before anything runs. */
export function reconnectorFor(timeoutText: string, options: Omit<ReconnectOptions, 'timeoutMs' | 'timeoutText'> = {}): Reconnector {
  const timeoutMs = parseDuration(timeoutText);
  if (timeoutMs === null) throw new Error(`--reconnect-timeout must be a duration like 30s or 10m (0: do not reconnect), got "${timeoutText}"`);
  return new Reconnector({ ...options, timeoutMs, timeoutText });
}
