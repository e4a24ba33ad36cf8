/**
 * Lock files held by a live process (pid with boot id and start time, process-identity.ts), taken
 * over from a process that is gone: the miner agent's urgent-fee record (agent/fee-budget-file.ts),
 * the provider's TLS folder while its files are moved (provider/tls.ts) and a vendor's revocation
 * list while it is rewritten (vendor/revocation.ts).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { resolve } from 'node:path';
import { identityOf, processIdentity, processLives } from './process-identity.js';

/** Lock files this process holds, with what it wrote in each: a second agent here is refused too. */
const heldLocks = new Map<string, string>();

/** Creates `file` holding `text`, whole, or false where it is there already (link: atomic, never half-written). */
function createWith(file: string, text: string): boolean {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      writeFileSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function readOrNull(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The live process that holds a lock file of `text`, or null: none (gone, or not one of ours). */
export function liveHolder(text: string): number | null {
  let id: ReturnType<typeof identityOf>;
  try {
    id = identityOf(JSON.parse(text));
  } catch {
    // Every lock is linked in whole: one that does not parse was never an agent's.
    return null;
  }
  if (id === null) return null;
  // This process holds none of that name (heldLocks): a process before it had the same pid (a
  // container restarted runs its agent as the same pid each time).
  if (id.pid === process.pid) return null;
  return processLives(id) ? id.pid : null;
}

/**
 * Removes `file` if it still holds `seen`: moved aside to a fresh name first (rename is atomic) and
 * compared there, so that a file another start put there since is put back, not removed.
 */
function clearStale(file: string, seen: string): void {
  const aside = `${file}.${randomBytes(6).toString('hex')}.stale`;
  try {
    renameSync(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    if (readOrNull(aside) !== seen) linkSync(aside, file);
  } catch (err) {
    // EEXIST: another start has one there already; it is the one that counts.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(aside, { force: true });
  }
}

/** The errors of a lock taken by takeLockFile: `held`, by a live process of pid; `changing`, when it kept changing. */
export interface LockErrors {
  held(pid: number): Error;
  takingOver(pid: number): Error;
  changing(): Error;
}

/**
 * Takes the lock file `path` for this process until the returned release is called (or the
 * process ends), or throws `errors.held` when a live process (this one included) holds it. The
 * lock is linked in whole with this pid. A lock whose pid is gone (a crash, a kill) is stale and
 * taken over, under `<path>.break` taken the same way, so that of two processes that find one
 * stale lock only one takes it (a breaker that died holding it is stale too, and cleared). A lock
 * holds its writer's boot id and start time where the system tells them, so that a pid handed to
 * another process since (a reboot, a container restarted) does not keep every taker out. Any other
 * failure to take it (a folder not writable) throws.
 */
export function takeLockFile(path: string, errors: LockErrors): () => void {
  // Resolved: one lock named two ways (relative, absolute) must meet in heldLocks, or the second
  // name would find this pid's lock and take it as a dead process's (liveHolder).
  const lock = resolve(path);
  if (heldLocks.has(lock)) throw errors.held(process.pid);
  const { boot, started } = processIdentity(process.pid);
  const mine = `${JSON.stringify({ pid: process.pid, id: randomBytes(8).toString('hex'), boot, started })}\n`;
  const taken = () => {
    heldLocks.set(lock, mine);
    return () => {
      if (heldLocks.get(lock) !== mine) return;
      heldLocks.delete(lock);
      if (readOrNull(lock) === mine) rmSync(lock, { force: true });
    };
  };
  // A few tries: each failed one means another process changed the lock in between.
  for (let tries = 0; tries < 4; tries++) {
    if (createWith(lock, mine)) return taken();
    const seen = readOrNull(lock);
    if (seen === null) continue;
    const pid = liveHolder(seen);
    if (pid !== null) throw errors.held(pid);
    const breaker = `${lock}.break`;
    if (!createWith(breaker, mine)) {
      const other = readOrNull(breaker);
      if (other === null) continue;
      const by = liveHolder(other);
      if (by !== null) throw errors.takingOver(by);
      // Left by a process that died while it held it (held only for a moment): cleared, and tried again.
      clearStale(breaker, other);
      continue;
    }
    try {
      // Still the stale one: no other process took it over since (they need the breaker).
      if (readOrNull(lock) === seen) rmSync(lock, { force: true });
      if (createWith(lock, mine)) return taken();
    } finally {
      rmSync(breaker, { force: true });
    }
  }
  throw errors.changing();
}
