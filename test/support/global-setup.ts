import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrateUp } from '../../src/store/migrator.js';
import { openDb } from '../../src/store/open.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplate: string;
  }
}

/**
 * Creating a PGlite data dir costs 3-4 s and ~900 MB of peak RSS (STACK.md), so it is done
 * once: every test file copies this migrated template instead.
 */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'drydock-template-'));
  const db = await openDb({ dataDir: dir, purpose: 'test template' });
  await migrateUp(db, { phase: 'pre' });
  await db.close();
  project.provide('pgliteTemplate', dir);
  return () => rmSync(dir, { recursive: true, force: true });
}
