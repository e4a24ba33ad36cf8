/**
 * The rule OpenSSH holds a private key file to, for every unencrypted key the product keeps on disk
 * (a node's consensus and network keys, the provider's TLS keys, a vendor CA's keys): readable and
 * writable by its owner only. Each is written 0600 (writeFileWhole); one that a backup restore or a
 * copy under the usual umask left 0644 could be read by every user of the host, who would then sign
 * as the node (a second vote: slashing), serve as the provider, or issue chips' certificates.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { UncError } from '@unc/core';

/**
 * Reads a private key file held to the owner-only rule, or throws BAD_KEY_FILE naming what is wrong
 * and the command that fixes it. The mode and owner checked are those of the file opened, and the
 * bytes returned are read from that same descriptor: checked by its path and then read by its path,
 * a file renamed over it in between (a link's target replaced, in a folder the home rule does not
 * cover) was read without a check. A link is followed, as the system follows it, and the file it
 * leads to is held to the rule. Also refused: a file another user owns (root aside, who can read it
 * anyway), who can read it or widen its mode whenever they like, the home rule's reasoning
 * (BAD_HOME); and anything but a plain file (a FIFO would hang the read, a device is no key file),
 * opened without blocking so that a FIFO is refused rather than waited on.
 */
export function readPrivateKeyFile(path: string): string {
  // Windows has neither these mode bits nor uids (its ACLs are not read here).
  const nonBlocking = process.platform === 'win32' ? 0 : constants.O_NONBLOCK;
  const fd = openSync(path, constants.O_RDONLY | nonBlocking);
  try {
    checkKeyFileStats(path, fstatSync(fd));
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function checkKeyFileStats(path: string, st: Stats): void {
  if (!st.isFile()) throw new UncError('BAD_KEY_FILE', `${path} holds a private key but is not a plain file`);
  const uid = process.getuid?.();
  if (uid === undefined) return;
  if (st.uid !== uid && st.uid !== 0)
    throw new UncError(
      'BAD_KEY_FILE',
      `${path} holds a private key but belongs to uid ${st.uid}, not to this user (uid ${uid}): its owner can read it or open it to others whenever they like; run chown ${uid} ${path} (or make the key anew)`,
    );
  if ((st.mode & 0o077) !== 0)
    throw new UncError(
      'BAD_KEY_FILE',
      `${path} holds a private key but its mode is ${(st.mode & 0o777).toString(8)}: others on this host can read or change it; run chmod 600 ${path}`,
    );
}
