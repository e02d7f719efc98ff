import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { LocalFleet } from '../../src/demo/local-fleet.js';

/** The built single-file CLI; `npm test` builds it before running the suites. */
export const BUNDLE = resolve(import.meta.dirname, '../../dist/drydock.mjs');

export async function startTestFleet(name: string, operatorArgs: string[] = []): Promise<LocalFleet> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run \`npm run build\` first (npm test does)`);
  const fleet = new LocalFleet({ bin: BUNDLE, dir: mkdtempSync(join(tmpdir(), `drydock-e2e-${name}-`)), removeDirOnStop: true });
  await fleet.startOperator(`127.0.0.1:${await freePort()}`, operatorArgs);
  return fleet;
}
