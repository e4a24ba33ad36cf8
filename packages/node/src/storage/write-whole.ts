/**
 * Small files replaced whole or not at all (the CLI's keyring and config files, the signer's state
 * and proposal records, the miner's urgent-fee record, the vendor CA's keys and certificates, the
 * provider's TLS key and certificates and its used-nonce file). Here, in @unc/node,
 * because it is the lowest package that both the CLI and the miner depend on and that already
 * touches the disk: @unc/core and @unc/sdk also run in the browser and never import `node:fs`.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Puts `data` at `path` whole or not at all, durable when it returns: written to a temporary file
 * in the same directory, fsynced, renamed over `path`, and the directory fsynced so the rename
 * survives a power loss too. When it throws from that last fsync, the file was already replaced
 * (a reader sees the new data) but may not be durable: a power loss could bring the old one back.
 * A caller that retries writes the same data again; one that must not act on an unsaved write
 * (the signer) treats the throw as a failed save, which is the safe side.
 *
 * The file ends up with exactly `mode`, whatever the process's umask: the temporary file is
 * created with `mode` (which the umask narrows, so it is never wider than asked) and set to `mode`
 * before any data goes in. Under umask 077 a certificate meant to be world-readable (0o644: the
 * vendor CA's, the provider's TLS certificate) came out 0o600, which callers had to chmod after.
 *
 * The temporary name is random and created exclusively ('wx'): never a file or link found there, so a link planted at a name known in advance (the
 * pid, or a fixed `.tmp`) cannot have the data written through it, and two processes rewriting
 * one file each write their own. A link at `path` itself is replaced, not followed. It ends in
 * `.tmp`, so a reader of `*.json` never sees one. When anything after its creation fails (a full
 * disk, a rename refused), it is removed: left behind, each failure leaked a file, and a key file's
 * copy stayed readable at a name nobody looks after.
 */
export function writeFileWhole(path: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  // Created here or thrown before anything is there to remove (a name taken is not ours to delete).
  const fd = openSync(tmp, 'wx', mode);
  try {
    try {
      fchmodSync(fd, mode);
      // writeFileSync on a descriptor writes until every byte is stored or throws: no short file.
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDirectory(dirname(path));
}

/** Whether `name` is one of writeFileWhole's temporary names for a file named `base` (`<base>.<12 hex>.tmp`). */
export function isWholeFileTemp(name: string, base: string): boolean {
  return name.startsWith(`${base}.`) && /^\.[0-9a-f]{12}\.tmp$/.test(name.slice(base.length));
}

/**
 * How old (ms, by the file's mtime) a temporary file must be before removeWholeLeftovers takes it
 * for a leftover: one that is younger may be another process's write in progress (two `unc`
 * commands writing config.json), whose rename would fail if it were removed under it. A write
 * holds its temporary file for milliseconds.
 */
export const LEFTOVER_MIN_AGE_MS = 60_000;

/**
 * Removes the temporary files of writeFileWhole for `path` (`<name>.<12 hex>.tmp` beside it) that a
 * process killed between their creation and the rename left: each holds a whole copy of the data
 * (a key, a fee record) at a name nobody looks after, and each crash left one more. Called where
 * such a file is loaded at start, not at each write. Only names of exactly that pattern, only
 * regular files and links (a link is unlinked itself, never followed: its target is not ours), and
 * only those older than `minAgeMs`. Never throws: a leftover that cannot be removed (a directory
 * not writable) is no reason to refuse a start; it is tried again at the next. Returns the names
 * removed.
 */
export function removeWholeLeftovers(path: string, minAgeMs = LEFTOVER_MIN_AGE_MS): string[] {
  const base = basename(path);
  return removeWholeLeftoversIn(dirname(path), (name) => name === base, minAgeMs);
}

/**
 * removeWholeLeftovers for every file of `dir` whose name `isBase` accepts, whether that file is
 * there or not: for a folder of files of varying names (the keyring's `<key>.json`), where a write
 * killed before its rename left a copy of a file that was never put in place (a key being added).
 * The same rules: `<name>.<12 hex>.tmp` exactly, regular files and links only (a link unlinked,
 * never followed), older than `minAgeMs`; never throws; returns the names removed.
 */
export function removeWholeLeftoversIn(
  dir: string,
  isBase: (name: string) => boolean,
  minAgeMs = LEFTOVER_MIN_AGE_MS,
): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return removed;
  }
  const cutoff = Date.now() - minAgeMs;
  for (const entry of entries) {
    // `.` + 12 hex + `.tmp`: 17 characters after the base, which must not be empty.
    const base = entry.slice(0, -17);
    if (base.length === 0 || !isWholeFileTemp(entry, base) || !isBase(base)) continue;
    const file = join(dir, entry);
    try {
      const st = lstatSync(file);
      if (!st.isFile() && !st.isSymbolicLink()) continue;
      if (st.mtimeMs > cutoff) continue;
      unlinkSync(file);
      removed.push(entry);
    } catch {
      // Gone since (another start removed it), or not ours to remove: left for the next start.
    }
  }
  return removed;
}

/**
 * Makes the entries of `dir` (files created, renamed or removed in it) survive a power loss. A
 * directory cannot be opened on Windows, where the wallet commands run as well; there this is a
 * no-op and a rename is as durable as NTFS makes it.
 */
export function fsyncDirectory(dir: string): void {
  if (process.platform === 'win32') return;
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
