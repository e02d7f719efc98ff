import { createServer } from 'node:http';
import { hostname } from 'node:os';

/**
 * The workload the demo and the tests deploy: an HTTP server on $PORT that answers with who
 * it is, and `/health`. On SIGTERM it stops accepting, lets in-flight requests finish and
 * exits — the graceful stop a migration relies on.
 */
export function runExampleApp(): void {
  const port = Number(process.env.PORT ?? 0);
  const started = new Date().toISOString();
  let served = 0;
  const server = createServer((req, res) => {
    served++;
    const body =
      req.url === '/health'
        ? { status: 'healthy' }
        : {
            deployment: process.env.DRYDOCK_DEPLOYMENT ?? null,
            instance: process.env.DRYDOCK_INSTANCE_ID ?? null,
            host: hostname(),
            pid: process.pid,
            started,
            served,
            message: process.env.MESSAGE ?? 'hello from drydock',
          };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(body)}\n`);
  });
  server.keepAliveTimeout = 2_000;
  server.listen(port, '127.0.0.1');
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    // In-flight requests get a bounded time to finish.
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
