// Compresses the API's JSON answers for clients that accept it (the dashboard's browser, curl
// --compressed): the node list of 1,000 nodes is ~500 KB of JSON and ~40 KB gzipped. Brotli at a
// low quality (fast, still smaller than gzip) when accepted, else gzip; small answers (under 1 KiB)
// and anything not JSON (the event stream, /metrics, static files, which come pre-compressed) are
// sent as they are, and so is the agent gateway (heartbeat throughput, issue 9). Compression runs on libuv's thread pool, not the event loop.
import { pipeline, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { brotliCompress, constants, createBrotliCompress, createGzip, gzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const brotli = promisify(brotliCompress);
const gz = promisify(gzip);

const BROTLI_QUALITY = 4;
const GZIP_LEVEL = 6;

/**
 * A JSON answer sent as a stream (the onSend hook sees strings and buffers only): compressed on
 * the way like the others when the client accepts it, its chunks through zlib's thread pool.
 */
export function compressedStream(req: FastifyRequest, reply: FastifyReply, body: Readable): Readable {
  void reply.header('vary', 'accept-encoding');
  const encoding = chooseEncoding(req.headers['accept-encoding']);
  if (!encoding) return body;
  void reply.header('content-encoding', encoding);
  const zip = encoding === 'br' ? createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY } }) : createGzip({ level: GZIP_LEVEL });
  // A body cut off (the plan worker failed) ends the compressed stream with the same error.
  return pipeline(body, zip, () => {});
}

/** Answers shorter than this are not worth a compressor's time. */
export const COMPRESS_MIN_BYTES = 1024;

/** The encoding to answer with, from an Accept-Encoding header: br, then gzip; q=0 refuses. */
export function chooseEncoding(acceptEncoding: string | undefined): 'br' | 'gzip' | null {
  if (!acceptEncoding) return null;
  const accepted = new Set<string>();
  for (const part of acceptEncoding.split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    if (q && Number(q.slice(2)) === 0) continue;
    accepted.add(name.trim());
  }
  if (accepted.has('br')) return 'br';
  if (accepted.has('gzip')) return 'gzip';
  return null;
}

export function registerCompression(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
    if (reply.hasHeader('content-encoding')) return payload;
    // The agent gateway's answers (heartbeats, long-polls: thousands a second) are not worth the
    // operator's CPU: agents sit on the same network and the desired state is small.
    if (req.url.startsWith('/api/v1/agent/')) return payload;
    const type = String(reply.getHeader('content-type') ?? '');
    if (!type.startsWith('application/json')) return payload;
    const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
    // Whatever the size, the answer depends on Accept-Encoding: caches must keep them apart.
    void reply.header('vary', 'accept-encoding');
    if (body.length < COMPRESS_MIN_BYTES) return payload;
    const encoding = chooseEncoding(req.headers['accept-encoding']);
    if (!encoding) return payload;
    const compressed =
      encoding === 'br'
        ? await brotli(body, { params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } })
        : await gz(body, { level: GZIP_LEVEL });
    void reply.header('content-encoding', encoding).header('content-length', compressed.length);
    return compressed;
  });
}
