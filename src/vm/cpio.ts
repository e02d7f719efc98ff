/**
 * A newc ("070701") cpio writer: the format the Linux kernel unpacks as an initramfs.
 *
 * We write our own instead of running `cpio -H newc`: busybox (and GNU) cpio copy the host's
 * inode numbers, mtimes and owners into the archive, so two builds of the same files differ.
 * Here every field comes from the entry list alone (mtime 0, uid/gid 0, inode numbers counted
 * in name order), so the same entries always give the same bytes.
 */

export type CpioEntry =
  | { type: 'dir'; name: string; /** Permission bits. Default 0o755. */ mode?: number }
  | { type: 'file'; name: string; mode: number; data: Uint8Array }
  | { type: 'symlink'; name: string; target: string }
  /** A device node, e.g. `dev/console` (5, 1): the kernel opens it for /init's stdio before /init can mount devtmpfs. */
  | { type: 'chardev'; name: string; mode: number; major: number; minor: number };

const MAGIC = '070701';
const TRAILER = 'TRAILER!!!';
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/**
 * The archive of `entries`, sorted by name (a parent directory sorts before what it holds,
 * as the kernel needs). Names are relative (`bin/sh`, no leading `/`); every parent directory
 * must itself be an entry. Throws on a duplicate name or a missing parent.
 */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => compareNames(a.name, b.name));
  checkNames(sorted);
  const chunks: Buffer[] = [];
  sorted.forEach((entry, index) => {
    const { mode, data, nlink, rdev } = describe(entry);
    // Inode 0 is left to the trailer; a shared inode number would make the kernel hard-link files.
    chunks.push(record(entry.name, { ino: index + 1, mode, nlink, rdev }, data));
  });
  chunks.push(record(TRAILER, { ino: 0, mode: 0, nlink: 1, rdev: [0, 0] }, Buffer.alloc(0)));
  return Buffer.concat(chunks);
}

function describe(entry: CpioEntry): { mode: number; data: Uint8Array; nlink: number; rdev: [number, number] } {
  switch (entry.type) {
    case 'dir':
      return { mode: S_IFDIR | permissions(entry.mode ?? 0o755), data: Buffer.alloc(0), nlink: 2, rdev: [0, 0] };
    case 'file':
      return { mode: S_IFREG | permissions(entry.mode), data: entry.data, nlink: 1, rdev: [0, 0] };
    case 'symlink':
      return { mode: S_IFLNK | 0o777, data: Buffer.from(entry.target, 'utf8'), nlink: 1, rdev: [0, 0] };
    case 'chardev':
      return { mode: S_IFCHR | permissions(entry.mode), data: Buffer.alloc(0), nlink: 1, rdev: [entry.major, entry.minor] };
  }
}

function permissions(mode: number): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new Error(`cpio: mode ${mode.toString(8)} is not a permission mask (0..07777)`);
  return mode;
}

interface Fields {
  ino: number;
  mode: number;
  nlink: number;
  rdev: [major: number, minor: number];
}

/** One header + name + data, each padded to 4 bytes (the header is 110 bytes, so name padding counts from the record start). */
function record(name: string, fields: Fields, data: Uint8Array): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const header =
    MAGIC +
    [
      fields.ino,
      fields.mode,
      0, // uid
      0, // gid
      fields.nlink,
      0, // mtime: fixed, so the bytes do not depend on when the build ran
      data.length,
      0, // devmajor
      0, // devminor
      fields.rdev[0],
      fields.rdev[1],
      nameBytes.length,
      0, // check: only used by the "070702" (crc) variant
    ]
      .map(hex8)
      .join('');
  return Buffer.concat([Buffer.from(header, 'ascii'), nameBytes, padding(110 + nameBytes.length), data, padding(data.length)]);
}

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`cpio: ${value} does not fit a header field`);
  return value.toString(16).padStart(8, '0');
}

function padding(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/** Byte order of the UTF-8 names, not the locale's: the same on every machine. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function checkNames(sorted: readonly CpioEntry[]): void {
  const dirs = new Set<string>();
  let previous: string | undefined;
  for (const entry of sorted) {
    const { name } = entry;
    if (name === '' || name.startsWith('/') || name.endsWith('/') || name.split('/').some((part) => part === '' || part === '.' || part === '..')) {
      throw new Error(`cpio: "${name}" is not a relative path without . or .. parts`);
    }
    if (name === TRAILER) throw new Error(`cpio: "${TRAILER}" is reserved for the end of the archive`);
    if (name === previous) throw new Error(`cpio: "${name}" appears twice`);
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : null;
    if (parent !== null && !dirs.has(parent)) throw new Error(`cpio: "${name}" has no directory entry for "${parent}"`);
    if (entry.type === 'dir') dirs.add(name);
    previous = name;
  }
}
