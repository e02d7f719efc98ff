import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { buildGuestImage, DEFAULT_GUEST_IMAGE_VERSION } from '../../vm/guest-image.js';
import { action } from '../context.js';
import { printJson } from '../output.js';

/** `$XDG_CACHE_HOME/drydock/vm`, else `~/.cache/drydock/vm`: downloaded kernel packages, kept between builds. */
export function defaultVmCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.startsWith('/') ? env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'drydock', 'vm');
}

interface BuildImageOptions {
  out: string;
  cache?: string;
  version?: string;
  json?: boolean;
}

export function registerVmCommands(program: Command): void {
  const vm = program.command('vm').description('virtual machine workloads (QEMU)');
  vm.command('build-image')
    .description('build the reference guest (Debian cloud kernel + busybox initramfs serving /status and /healthz on :8080) and its vm-image artifact')
    .requiredOption('--out <dir>', 'output directory: vmlinuz, initrd.img, image.json and drydock-guest-<version>.vm-image.tar (created if missing)')
    .option('--cache <dir>', `where downloaded kernel packages are kept (default ${defaultVmCacheDir()})`)
    .option('--version <semver>', `the image version, reported by GET /status (default ${DEFAULT_GUEST_IMAGE_VERSION})`)
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: BuildImageOptions) => {
        const startedAt = performance.now();
        const image = await buildGuestImage({
          outDir: resolve(opts.out),
          cacheDir: resolve(opts.cache ?? defaultVmCacheDir()),
          version: opts.version,
          // Progress goes to stderr, so --json output stays parseable.
          log: (line) => process.stderr.write(`${line}\n`),
        });
        const buildMs = Math.round(performance.now() - startedAt);
        const size = (path: string) => statSync(path).size;
        if (opts.json) return printJson({ ...image, size: size(image.tarPath), build_ms: buildMs });
        const { imageJson } = image;
        const mb = (path: string) => `${(size(path) / 1e6).toFixed(1)} MB`;
        process.stdout.write(
          [
            `built ${imageJson.name} ${imageJson.version} in ${(buildMs / 1000).toFixed(1)} s`,
            `  kernel:   ${image.kernelPath} (${mb(image.kernelPath)}, ${imageJson.kernel_package} ${imageJson.kernel_package_version})`,
            `  initrd:   ${image.initrdPath} (${mb(image.initrdPath)}, busybox ${imageJson.busybox_version})`,
            `  artifact: ${image.tarPath} (${mb(image.tarPath)})`,
            `  sha256:   ${image.sha256}`,
            `publish:   drydock artifacts publish --component ${imageJson.name} --version ${imageJson.version} --kind vm-image --file ${image.tarPath} --key <private key>`,
            '',
          ].join('\n'),
        );
      }),
    );
}
