#!/usr/bin/env node
// Thin launcher so `npx drydock` and the package bin work from a checkout after `npm run build`.
import { existsSync } from 'node:fs';
const bundle = new URL('../dist/drydock.mjs', import.meta.url);
if (!existsSync(bundle)) {
  console.error('drydock is not built yet: run `npm run build` first.');
  process.exit(1);
}
await import(bundle.href);
