// Ports a local fleet binds much later than it chooses them (a control-plane node's second
// operator address waits for a blue-green rollout, minutes after the fleet starts). A port the
// kernel handed out (listen on port 0) comes from its ephemeral range, which every outgoing
// connection and every `--listen 127.0.0.1:0` of the fleet draws from meanwhile: by the time the
// address is used, another socket may hold it. These come from below that range instead, each
// checked free when chosen, none twice.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Where the kernel's ephemeral range starts (Linux: ip_local_port_range; 32768 elsewhere). */
function ephemeralStart(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const port = Number(low);
    return Number.isInteger(port) && port > 1024 ? port : 32768;
  } catch {
    return 32768;
  }
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/**
 * `count` distinct ports on `host` below the ephemeral range, free now. `random` picks where the
 * search starts (pass Math.random; a fixed value for a repeatable choice), so fleets started side
 * by side rarely probe the same ports.
 */
export async function fixedPorts(count: number, random: () => number, host = '127.0.0.1'): Promise<number[]> {
  const top = ephemeralStart();
  const bottom = Math.max(10_000, top - 20_000);
  const span = top - bottom;
  const start = bottom + Math.floor(random() * span);
  const ports: number[] = [];
  for (let i = 0; i < span && ports.length < count; i++) {
    const port = bottom + ((start - bottom + i) % span);
    if (await bindable(port, host)) ports.push(port);
  }
  if (ports.length < count) throw new Error(`only ${ports.length} of ${count} free ports between ${bottom} and ${top} on ${host}`);
  return ports;
}
