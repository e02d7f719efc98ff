import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fixedPorts } from '../../src/demo/fixed-ports.js';

const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
const held: Server[] = [];
const hold = (port: number) =>
  new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
    held.push(server);
  });

afterEach(async () => {
  await Promise.all(held.splice(0).map((s) => new Promise((r) => s.close(r))));
});

describe('fixedPorts', () => {
  it('chooses distinct ports below the ephemeral range, each one bindable', async () => {
    const ports = await fixedPorts(18, Math.random);
    expect(new Set(ports).size).toBe(18);
    for (const port of ports) expect(port).toBeLessThan(ephemeralStart);
    for (const port of ports) await hold(port);
  });

  it('skips a port another socket holds', async () => {
    const [first] = await fixedPorts(1, () => 0.5);
    await hold(first as number);
    const again = await fixedPorts(3, () => 0.5);
    expect(again).not.toContain(first);
    expect(new Set(again).size).toBe(3);
  });
});
