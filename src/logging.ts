import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * JSON lines when the output is not a terminal (systemd, files, tests); readable lines on a
 * terminal. pino-pretty runs as a stream in-process (not a worker transport) so the single
 * bundled file works. DRYDOCK_LOG_LEVEL sets the level (default info); NO_COLOR (any value,
 * no-color.org) keeps the readable lines free of colour.
 */
export function createLogger(name: string, options: { level?: string; pretty?: boolean } = {}): Logger {
  const level = options.level ?? process.env.DRYDOCK_LOG_LEVEL ?? 'info';
  const usePretty = options.pretty ?? (process.stdout.isTTY === true && process.env.DRYDOCK_LOG_FORMAT !== 'json');
  if (!usePretty) return pino({ name, level });
  return pino({ name, level }, pretty({ colorize: !process.env.NO_COLOR, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
}
