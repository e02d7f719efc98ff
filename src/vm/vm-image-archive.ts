import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { x as untar } from 'tar';
import { z } from 'zod';
import { isSemver } from '../domain/semver.js';

/**
 * A `vm-image` artifact is an uncompressed tar of exactly these three files. The kernel and
 * the initramfs are already compressed (bzImage) or small, so gzip would buy little and cost
 * the agent a decompression per download.
 */
export const VM_IMAGE_FILES = ['image.json', 'initrd.img', 'vmlinuz'] as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256');
const urlPath = z.string().regex(/^\/[A-Za-z0-9._~/-]*$/, 'an absolute URL path');

/** image.json: what a VMM needs to boot the image and to tell that it serves. */
export const VmImageJsonSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
  version: z.string().refine(isSemver, 'a semantic version like 1.2.3'),
  /** The port the guest serves HTTP on; the VMM forwards a host port to it. */
  guest_port: z.number().int().min(1).max(65_535),
  /** 200 once the guest serves. */
  health_path: urlPath,
  /** 200 with `{boot_id, uptime_s, requests, image}`. */
  status_path: urlPath,
  /** The kernel command line (`-append`); the VMM is expected to run with `-no-reboot`. */
  cmdline: z.string().min(1).max(4096),
  /** The least guest RAM the image was seen to boot and serve with. */
  memory_mb_min: z.number().int().min(16).max(1_048_576),
  kernel_package: z.string().min(1).max(200),
  kernel_package_version: z.string().min(1).max(200),
  busybox_version: z.string().min(1).max(200),
  files: z.object({ vmlinuz: sha256Hex, 'initrd.img': sha256Hex }).strict(),
});
export type VmImageJson = z.infer<typeof VmImageJsonSchema>;

export interface UnpackedVmImage {
  dir: string;
  imageJson: VmImageJson;
  kernelPath: string;
  initrdPath: string;
}

/** The archive is not a valid vm-image: a stable code for callers, a message saying what is wrong. */
export class VmImageArchiveError extends Error {
  readonly code = 'VM_IMAGE_ARCHIVE_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : options);
  }
}

/**
 * Unpacks a vm-image tar (a path, or its bytes) into `intoDir` and checks it: exactly the
 * three regular files of {@link VM_IMAGE_FILES}, an image.json that matches the schema, and a
 * kernel and initramfs whose sha256 are the ones image.json records. `intoDir` must be missing
 * or empty; when the archive is rejected, nothing of it is left there.
 */
export async function readVmImageArchive(source: string | Uint8Array, intoDir: string): Promise<UnpackedVmImage> {
  const dir = resolve(intoDir);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`${dir} is not empty; unpack a vm-image into a new directory`);
  mkdirSync(dir, { recursive: true });
  try {
    return await unpackAndCheck(source, dir);
  } catch (error) {
    for (const name of readdirSync(dir)) rmSync(join(dir, name), { recursive: true, force: true });
    if (error instanceof VmImageArchiveError) throw error;
    throw new VmImageArchiveError(`the vm-image archive could not be unpacked: ${(error as Error).message}`, { cause: error });
  }
}

async function unpackAndCheck(source: string | Uint8Array, dir: string): Promise<UnpackedVmImage> {
  const unexpected: string[] = [];
  const seen = new Set<string>();
  const unpack = untar({
    cwd: dir,
    strict: true,
    // Only the three plain files: no directories, links or devices, and nothing else besides.
    filter: (path, entry) => {
      const name = path.replace(/^\.\//, '');
      const known = (VM_IMAGE_FILES as readonly string[]).includes(name) && 'type' in entry && entry.type === 'File' && !seen.has(name);
      if (!known) unexpected.push(path);
      else seen.add(name);
      return known;
    },
  });
  await pipeline(typeof source === 'string' ? createReadStream(source) : Readable.from([Buffer.from(source)]), unpack);
  if (unexpected.length > 0) throw new VmImageArchiveError(`the vm-image archive holds unexpected entries: ${unexpected.slice(0, 5).join(', ')}`);
  const missing = VM_IMAGE_FILES.filter((name) => !seen.has(name));
  if (missing.length > 0) throw new VmImageArchiveError(`the vm-image archive lacks ${missing.join(', ')}`);

  const imageJson = parseImageJson(readFileSync(join(dir, 'image.json'), 'utf8'));
  const kernelPath = join(dir, 'vmlinuz');
  const initrdPath = join(dir, 'initrd.img');
  for (const [name, path] of [['vmlinuz', kernelPath], ['initrd.img', initrdPath]] as const) {
    const actual = createHash('sha256').update(readFileSync(path)).digest('hex');
    if (actual !== imageJson.files[name]) throw new VmImageArchiveError(`${name} has sha256 ${actual}, image.json records ${imageJson.files[name]}`);
  }
  return { dir, imageJson, kernelPath, initrdPath };
}

/** image.json's text, validated; throws {@link VmImageArchiveError} naming each bad field. */
export function parseImageJson(text: string): VmImageJson {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new VmImageArchiveError(`image.json is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = VmImageJsonSchema.safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
    throw new VmImageArchiveError(`image.json is invalid: ${issues}`);
  }
  return parsed.data;
}
