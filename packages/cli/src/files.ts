/**
 * Files the CLI rewrites (key files, config.json): replaced whole or not at all. Written in place,
 * a file is truncated first, so a write that fails (a full disk) or a crash mid-write left it
 * empty or cut: an encrypted key lost for good, or a config.json the next `unc start` cannot parse,
 * the operator's settings (RPC and p2p limits, consensus options) gone with it.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Puts `text` at `path` whole or not at all: written to a temporary file of its own (created
 * here with `mode`, never a file or link found there), fsynced, then renamed over `path` (a
 * symlink at `path` is replaced, not followed). The temporary name ends in `.tmp`, so a reader
 * of `*.json` never sees one a crash left, and carries the process id: two commands rewriting
 * one file at once (`unc start` and `unc miner start` on one config.json) each write their own,
 * where a shared name let the second delete the first's and the first rename an empty file in.
 */
export function writeWhole(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  // The rename itself must survive a power loss too. (A directory cannot be opened on Windows, where
  // the wallet commands run as well; there the rename is as durable as NTFS makes it.)
  if (process.platform === 'win32') return;
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}
