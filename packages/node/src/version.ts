import { readFileSync } from 'node:fs';

/**
 * The node software's version, reported by unc_status and the OpenRPC document: read from this
 * package's package.json, the one place it is written (the versions test checks they all agree).
 */
export const NODE_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
