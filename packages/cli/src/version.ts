/**
 * The release version, read from this package's package.json: the one place it is written (the
 * workspaces share it; `npm version` changes them together and a test checks they agree).
 */
import { readFileSync } from 'node:fs';

export const CLI_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
