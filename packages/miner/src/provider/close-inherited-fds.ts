/**
 * Imported first by the job process (sandbox-runner.ts), before anything that could run the
 * renter's model: closes every file descriptor it was handed beyond its stdio and its channel
 * (fd 3). Node opens its own with close-on-exec, but a descriptor the provider itself inherited
 * without it (from the shell, service manager or program that started it) passed on through
 * the provider, through bwrap (which closes none) and into the sandbox: a pipe, socket or file of
 * the provider's surroundings, in reach of a model that broke ONNX Runtime. A descriptor without
 * close-on-exec is, at this point, one that was inherited: Node and libuv mark every one they open.
 */
import { closeSync, readdirSync, readFileSync } from 'node:fs';

const O_CLOEXEC = 0o2000000;

/** Closes the inherited descriptors above `keep` (those without close-on-exec); returns them. */
export function closeInheritedFds(keep = 3): number[] {
  const closed: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return closed; // no /proc: nothing to list
  }
  for (const name of names) {
    const fd = Number(name);
    if (!Number.isSafeInteger(fd) || fd <= keep) continue;
    let flags: number;
    try {
      const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
      if (m === null) continue;
      flags = Number.parseInt(m[1]!, 8);
    } catch {
      continue; // the listing's own descriptor, closed since
    }
    if ((flags & O_CLOEXEC) !== 0) continue;
    try {
      closeSync(fd);
      closed.push(fd);
    } catch {
      // closed meanwhile
    }
  }
  return closed;
}

closeInheritedFds();
