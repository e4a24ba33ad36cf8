/**
 * The rule OpenSSH holds a private key file to, for every unencrypted key the product keeps on disk
 * (a node's consensus and network keys, the provider's TLS keys, a vendor CA's keys): readable and
 * writable by its owner only. Each is written 0600 (writeFileWhole); one that a backup restore or a
 * copy under the usual umask left 0644 could be read by every user of the host, who would then sign
 * as the node (a second vote: slashing), serve as the provider, or issue chips' certificates.
 */
import { statSync } from 'node:fs';
import { UncError } from '@unc/core';

/** Throws BAD_KEY_FILE, naming the chmod that fixes it, unless only the owner may use `path`. */
export function checkPrivateKeyFile(path: string): void {
  // Windows has no such mode bits (its ACLs are not read here).
  if (process.getuid === undefined) return;
  const mode = statSync(path).mode;
  if ((mode & 0o077) !== 0)
    throw new UncError(
      'BAD_KEY_FILE',
      `${path} holds a private key but its mode is ${(mode & 0o777).toString(8)}: others on this host can read or change it; run chmod 600 ${path}`,
    );
}
