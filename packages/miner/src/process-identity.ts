/**
 * Whether the process that wrote a record (a lock, a folder's owner file) still runs: its pid, and
 * what tells it apart from a later process given the same pid (Linux's /proc: the boot's id and the
 * process's start time in ticks since boot). Used by the urgent-fee lock (fee-budget-file.ts) and
 * by the job folders a provider leaves when it is killed (sandbox.ts).
 */
import { readFileSync } from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** /proc/sys/kernel/random/boot_id; undefined where it cannot be read (not Linux). */
  boot?: string;
  /** Field 22 of /proc/<pid>/stat: the start time in ticks since boot; undefined where unread. */
  started?: string;
}

/** What tells process `pid` apart from another that had the same pid; each part undefined where unread. */
export function processIdentity(pid: number): ProcessIdentity {
  const id: ProcessIdentity = { pid };
  try {
    id.boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // Not Linux: the pid alone.
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command's name (in parentheses, which may hold anything): field 3 on; 22 is the start.
    const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    if (started !== undefined && /^[0-9]+$/.test(started)) id.started = started;
  } catch {
    // Gone since, or not Linux.
  }
  return id;
}

/**
 * A record's identity read back from JSON: a positive safe-integer pid, `boot` and `started` kept
 * only where they are strings; null for anything else.
 */
export function identityOf(value: unknown): ProcessIdentity | null {
  if (typeof value !== 'object' || value === null) return null;
  const { pid, boot, started } = value as Record<string, unknown>;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  return {
    pid,
    ...(typeof boot === 'string' ? { boot } : {}),
    ...(typeof started === 'string' ? { started } : {}),
  };
}

/**
 * Whether the process `id` names still runs. A pid that lives may be another process's now (after
 * a reboot or a container restart pids are handed out again from the start): the boot and start
 * time tell, where both sides know them; where they cannot tell, a live pid counts as alive.
 */
export function processLives(id: ProcessIdentity): boolean {
  try {
    process.kill(id.pid, 0);
  } catch (err) {
    // EPERM: it lives, as another user.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const now = processIdentity(id.pid);
  if (id.boot !== undefined && now.boot !== undefined && id.boot !== now.boot) return false;
  if (id.started !== undefined && now.started !== undefined && id.started !== now.started) return false;
  return true;
}
