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
  return readOwnerOnlyFile(path, {
    what: 'a private key',
    code: 'BAD_KEY_FILE',
    pipes: false,
    rootGrants: false,
  });
}

/**
 * Reads a file that holds a secret the user names on the command line (a key's password, a
 * mnemonic, an API token: `--password-file`, `--mnemonic-file`, `--api-token-file`), held to the same
 * owner-only rule as a key file, through the same one descriptor, or throws BAD_SECRET_FILE naming
 * the file and the `chmod 600` that fixes it. A password file left 0644 (the usual umask) let every
 * user of the host read the password of a keystore that may itself be in a backup, and an API token
 * 0644 let any of them spend the gateway's budget. Unlike a key file, a pipe is accepted (the mode
 * and owner are still checked): `--password-file <(pass show unc)` and `/dev/stdin` hand the secret
 * over without writing it to a disk, so the open waits for a writer, as the shell's pipe has.
 *
 * A file root owns and grants this (non-root) user's group read, no more (mode 440 or 640), is
 * root's grant and is read: systemd hands a service its credential (`LoadCredential=`,
 * `$CREDENTIALS_DIRECTORY`) as a root-owned 0400 file with an ACL entry for the unit's user, which
 * stat shows as mode 440 (the ACL mask in the group bits), on a read-only file system; refused,
 * `unc gateway start --api-token-file $CREDENTIALS_DIRECTORY/token` could not run as a service at
 * all, and the chmod the refusal named was impossible. Still refused: others' read, any write but
 * root's, and a group read on a file this user owns (root included) or on a key file. On macOS a
 * pipe read through `/dev/stdin` or `/dev/fd/N` is not held to its mode, which XNU reports 0660
 * for every pipe (checkOwnerOnly).
 */
export function readSecretFile(path: string, what: string): string {
  return readOwnerOnlyFile(path, secretRule(what));
}

/** The owner-only rule of a secret file (readSecretFile, checkSecretFileStats). */
function secretRule(what: string): OwnerOnlyRule {
  return { what, code: 'BAD_SECRET_FILE', pipes: true, rootGrants: true };
}

interface OwnerOnlyRule {
  /** What the file holds, for the messages: "a private key", "a password". */
  what: string;
  /** The error code of a refusal. */
  code: string;
  /** Whether a pipe (FIFO) is read as well as a plain file. */
  pipes: boolean;
  /** Whether root may grant this (non-root) user's group read of a file root owns (readSecretFile). */
  rootGrants: boolean;
}

function readOwnerOnlyFile(path: string, rule: OwnerOnlyRule): string {
  // Windows has neither these mode bits nor uids (its ACLs are not read here).
  const nonBlocking = process.platform === 'win32' || rule.pipes ? 0 : constants.O_NONBLOCK;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | nonBlocking);
  } catch (err) {
    if (!rule.pipes) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new UncError(
      rule.code,
      `${path} should hold ${rule.what} but cannot be read (${e.code ?? e.message})`,
    );
  }
  try {
    checkOwnerOnly(path, fstatSync(fd), rule);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** What of a file's fstat the owner-only rule reads. */
export type OwnerOnlyStats = Pick<Stats, 'isFile' | 'isFIFO' | 'uid' | 'mode'>;

/** The reader the rule is applied for: its uid (none on Windows) and its platform. */
export interface SecretFileReader {
  uid: number | undefined;
  platform: NodeJS.Platform;
}

/**
 * The check readSecretFile applies to the descriptor it reads (`st`, its fstat), by itself: throws
 * BAD_SECRET_FILE, or returns. For tests of another platform's answers, and for hosts that open
 * the file themselves.
 */
export function checkSecretFileStats(
  path: string,
  st: OwnerOnlyStats,
  what: string,
  reader: SecretFileReader = { uid: process.getuid?.(), platform: process.platform },
): void {
  checkOwnerOnly(path, st, secretRule(what), reader);
}

/** This process's own descriptors, as a path names one: what the shell hands a pipe over as. */
const OWN_DESCRIPTOR = /^\/dev\/(stdin|fd\/\d+)$/;

function checkOwnerOnly(
  path: string,
  st: OwnerOnlyStats,
  rule: OwnerOnlyRule,
  reader: SecretFileReader = { uid: process.getuid?.(), platform: process.platform },
): void {
  const { what, code } = rule;
  if (!st.isFile() && !(rule.pipes && st.isFIFO()))
    throw new UncError(
      code,
      `${path} holds ${what} but is not a plain file${rule.pipes ? ' or a pipe' : ''}`,
    );
  const uid = reader.uid;
  if (uid === undefined) return;
  if (st.uid !== uid && st.uid !== 0)
    throw new UncError(
      code,
      `${path} holds ${what} but belongs to uid ${st.uid}, not to this user (uid ${uid}): its owner can read it or open it to others whenever they like; run chown ${uid} ${path}${rule.pipes ? '' : ' (or make the key anew)'}`,
    );
  let granted = rule.rootGrants && st.uid === 0 && uid !== 0 ? 0o040 : 0;
  // macOS reports every anonymous pipe 0660 (XNU pipe_stat), bits no other user can act on: the
  // pipe has no name on a disk, only this process's descriptor (the shell's `<(…)`, a pipe into
  // stdin). Held to them, `--password-file <(pass show unc)` and `/dev/stdin` were refused there.
  if (rule.pipes && st.isFIFO() && reader.platform === 'darwin' && OWN_DESCRIPTOR.test(path))
    granted |= 0o060;
  if ((st.mode & 0o077 & ~granted) !== 0)
    throw new UncError(
      code,
      `${path} holds ${what} but its mode is ${(st.mode & 0o777).toString(8)}: others on this host can read or change it; run chmod 600 ${path}`,
    );
}
