// The vm driver reads a guest's volume and activity from the status JSON at its image's
// status_path. The guest here is a workload on loopback (any guest's HTTP server, not a
// stand-in for drydock's own): what matters is how the agent reads what it answers.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { WORKLOAD_STATUS_MAX_BYTES } from '../../src/domain/workload-report.js';
import { guestWorkloadStatus } from '../../src/vm/guest-status.js';

describe("a guest's status JSON as the vm driver reads it", () => {
  let server: Server;
  let base: string;
  const answers: Record<string, { status: number; body: string }> = {
    '/status': { status: 200, body: '{"boot_id": "b-1", "uptime_s": 3.2, "requests": 7, "volume": {"replicas": 3, "healthy_replicas": 1}, "activity": "snapshot"}' },
    '/plain': { status: 200, body: '{"boot_id": "b-1", "uptime_s": 3.2, "requests": 7}' },
    '/html': { status: 200, body: '<html>hello</html>' },
    '/huge': { status: 200, body: `{"pad": "${'x'.repeat(2 * WORKLOAD_STATUS_MAX_BYTES)}"}` },
    '/busy': { status: 503, body: 'busy' },
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const answer = answers[req.url ?? ''] ?? { status: 404, body: 'not found' };
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  afterAll(async () => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reads volume and activity beside the other fields, none from a status without them or a 404', async () => {
    expect(await guestWorkloadStatus(`${base}/status`, 2000)).toEqual({ ok: true, report: { volume: { replicas: 3, healthy_replicas: 1 }, activity: 'snapshot' } });
    expect(await guestWorkloadStatus(`${base}/plain`, 2000)).toEqual({ ok: true, report: {} });
    expect(await guestWorkloadStatus(`${base}/missing`, 2000)).toEqual({ ok: true, report: {} });
  });

  it('refuses a status that is not JSON or too large, and reads nothing from a guest that does not answer now', async () => {
    expect(await guestWorkloadStatus(`${base}/html`, 2000)).toMatchObject({ ok: false, problem: expect.stringContaining('not JSON') });
    expect(await guestWorkloadStatus(`${base}/huge`, 2000)).toEqual({ ok: false, problem: `larger than ${WORKLOAD_STATUS_MAX_BYTES} bytes` });
    expect(await guestWorkloadStatus(`${base}/busy`, 2000)).toBeUndefined();
    expect(await guestWorkloadStatus(`http://127.0.0.1:${await freePort()}/status`, 2000)).toBeUndefined();
  });
});
