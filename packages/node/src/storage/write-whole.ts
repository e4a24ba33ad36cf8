/**
 * Small files replaced whole or not at all (the CLI's key files and config.json, the miner's
 * urgent-fee record, the vendor CA's keys, the provider's used-nonce file). Here, in @unc/node,
 * because it is the lowest package that both the CLI and the miner depend on and that already
 * touches the disk: @unc/core and @unc/sdk also run in the browser and never import `node:fs`.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Puts `data` at `path` whole or not at all, durable when it returns: written to a temporary file
 * in the same directory, fsynced, renamed over `path`, and the directory fsynced so the rename
 * survives a power loss too.
 *
 * The temporary name is random and created exclusively ('wx', with `mode`, which the umask may
 * narrow): never a file or link found there, so a link planted at a name known in advance (the
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
