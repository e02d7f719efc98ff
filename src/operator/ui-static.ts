// Serves the dashboard's static files (built by `npm run build` into dist/ui) at /ui/ and sends
// `/` there. The files hold no data, so they are open; every datum comes from the API with the
// session cookie (isOpenPath lets /ui/ through). A Content-Security-Policy keeps the page from talking to any other host.
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';

/**
 * Where the built dashboard is: beside the bundle (dist/drydock.mjs → dist/ui) or, running from
 * the sources (tests, tsx), in the checkout's dist/ui. DRYDOCK_UI_DIR overrides both.
 */
export function uiDir(): string | undefined {
  const candidates = [
    process.env.DRYDOCK_UI_DIR,
    fileURLToPath(new URL('./ui/', import.meta.url)),
    fileURLToPath(new URL('../../dist/ui/', import.meta.url)),
  ];
  return candidates.find((dir): dir is string => dir !== undefined && existsSync(`${dir}/index.html`));
}

/** A built asset whose name carries its content's hash (scripts/build-ui.mjs), or its pre-compressed sibling. */
const HASHED_ASSET = /^app\.[0-9a-f]{12}\.(js|css)(\.br|\.gz)?$/;

const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export async function uiRoutes(app: FastifyInstance): Promise<void> {
  const root = uiDir();
  // Relative redirects: behind a prefix (the edge's /d/drydock/) they stay under it.
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('ui/'));
  app.get('/ui', { schema: { hide: true } }, async (_req, reply) => reply.redirect('ui/'));
  if (!root) {
    app.get('/ui/*', { schema: { hide: true } }, async () => {
      throw new ApiError(404, 'UI_NOT_BUILT', 'the dashboard is not built; run `npm run build` (it writes dist/ui)');
    });
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/ui/',
    cacheControl: false,
    // The build writes .br and .gz beside each file: sent to browsers that accept them.
    preCompressed: true,
    setHeaders: (reply, path) => {
      // app.<hash>.js / .css never change under their name: a browser keeps them and asks again
      // for nothing. index.html names them, so it is revalidated (ETag) on every load: an upgraded
      // operator's page loads its own assets.
      const cache = HASHED_ASSET.test(basename(path)) ? 'public, max-age=31536000, immutable' : 'no-cache';
      void reply.header('cache-control', cache).header('content-security-policy', CSP).header('x-content-type-options', 'nosniff');
    },
  });
}
