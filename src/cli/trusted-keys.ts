import { readFileSync } from 'node:fs';
import { publicKeyFromPem } from '../signing.js';

/** The `--trusted-key` files of the agent and the operator, parsed, with a clear error for a bad one. */
export function readTrustedKeys(files: string[]) {
  return files.map((file) => {
    try {
      return publicKeyFromPem(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new Error(`--trusted-key ${file}: ${(error as Error).message}; give the .pub file written by \`drydock keys generate\``);
    }
  });
}
