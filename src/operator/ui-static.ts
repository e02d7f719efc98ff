// Serves the dashboard's static files (built by `npm run build` into dist/ui) at /ui/ and sends
// `/` there. The files hold no data, so they are open; every datum comes from the API with the
// session cookie (isOpenPath lets /ui/ through). A Content-Security-Policy keeps the page from talking to any other host.
import { existsSync } from 'node:fs';
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

const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export async function uiRoutes(app: FastifyInstance): Promise<void> {
  const root = uiDir();
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  if (!root) {
    app.get('/ui/*', { schema: { hide: true } }, async () => {
      throw new ApiError(404, 'UI_NOT_BUILT', 'the dashboard is not built; run `npm run build` (it writes dist/ui)');
    });
    return;
  }
  await app.register(fastifyStatic, {
    root,
    prefix: '/ui/',
    // Asset names are fixed (app.js, app.css): revalidate so an upgraded operator serves its own.
    cacheControl: false,
    setHeaders: (reply) => {
      void reply.header('cache-control', 'no-cache').header('content-security-policy', CSP).header('x-content-type-options', 'nosniff');
    },
  });
}
