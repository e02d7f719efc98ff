import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { generateSigningKeyPair, keyId, publicKeyFromPem } from '../../signing.js';
import { action } from '../context.js';
import { printJson } from '../output.js';

export const PRIVATE_KEY_FILE = 'drydock-signing.key';
export const PUBLIC_KEY_FILE = 'drydock-signing.pub';

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('artifact signing keys (ed25519)');
  keys
    .command('generate')
    .description(`write a new key pair: DIR/${PRIVATE_KEY_FILE} (mode 0600) and DIR/${PUBLIC_KEY_FILE}`)
    .requiredOption('--out <dir>', 'directory for the key pair (created if missing)')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { out: string; json?: boolean }) => {
        const dir = resolve(opts.out);
        const privatePath = join(dir, PRIVATE_KEY_FILE);
        const publicPath = join(dir, PUBLIC_KEY_FILE);
        // A key pair is never replaced: agents may trust the old public key.
        for (const path of [privatePath, publicPath]) {
          if (existsSync(path)) throw new Error(`${path} exists already; refusing to overwrite a signing key (pick another --out)`);
        }
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        const pair = generateSigningKeyPair();
        writeFileSync(privatePath, pair.privatePem, { mode: 0o600, flag: 'wx' });
        writeFileSync(publicPath, pair.publicPem, { mode: 0o644, flag: 'wx' });
        const id = keyId(publicKeyFromPem(pair.publicPem));
        if (opts.json) return printJson({ key_id: id, private_key: privatePath, public_key: publicPath });
        process.stdout.write(`key ${id}\n  private: ${privatePath} (keep it secret)\n  public:  ${publicPath} (give it to agents: --trusted-key)\n`);
      }),
    );
}
