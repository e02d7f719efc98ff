/**
 * Connections the kernel may hold for a server of ours before it accepts them (capped by
 * net.core.somaxconn). Node's default of 511 overflows when thousands of agents connect at once —
 * after a failover, or 3,000 keep-alive sockets opening under bench:heartbeats-http — and the
 * kernel then drops the handshake: the agent retries a second later, then two, then four, and its
 * heartbeat reaches the operator too late for anyone to know it was sent.
 */
export const LISTEN_BACKLOG = 4096;

/** Splits "host:port" (IPv6 as "[::1]:8080"); a bare port means 127.0.0.1. */
export function parseListen(listen: string, defaultPort: number): { host: string; port: number } {
  const text = listen.trim();
  if (/^\d+$/.test(text)) return { host: '127.0.0.1', port: Number(text) };
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) return { host: v6[1] as string, port: v6[2] ? Number(v6[2]) : defaultPort };
  const [host, port] = text.split(':');
  if (!host) throw new Error(`bad listen address "${listen}": use host:port, e.g. 127.0.0.1:8080`);
  const parsed = port === undefined ? defaultPort : Number(port);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535) throw new Error(`bad port in listen address "${listen}"`);
  return { host, port: parsed };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
