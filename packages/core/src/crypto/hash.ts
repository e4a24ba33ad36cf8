import { utf8 } from '../bytes.js';
import * as platform from '../platform/node.js';

/** SHA-256 of the concatenation of `parts` (no separators: callers encode lengths themselves). */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  return platform.sha256(parts);
}

export function sha512(...parts: Uint8Array[]): Uint8Array {
  return platform.sha512(parts);
}

const tagCache = new Map<string, Uint8Array>();

/**
 * Domain-separated hash: SHA-256(u8 len(tag) ‖ tag ‖ parts…). Every protocol hash names its
 * purpose ("UNC/tx", "UNC/header", …) so that bytes valid in one role can never be replayed in
 * another.
 */
export function taggedHash(tag: string, ...parts: Uint8Array[]): Uint8Array {
  let prefix = tagCache.get(tag);
  if (!prefix) {
    const t = utf8(tag);
    if (t.length > 255) throw new RangeError('hash tag too long');
    prefix = new Uint8Array(1 + t.length);
    prefix[0] = t.length;
    prefix.set(t, 1);
    tagCache.set(tag, prefix);
  }
  return sha256(prefix, ...parts);
}
