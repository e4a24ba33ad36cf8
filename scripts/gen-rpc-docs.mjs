// Regenerates the method reference in docs/rpc.md from the RPC schema (@unc/sdk/schema).
// Run after `npx tsc -b`: `npm run docs:rpc`. packages/sdk/test/openrpc.test.ts fails while the
// committed docs/rpc.md differs from what this writes.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  openRpcDocument,
  rpcReferenceMarkdown,
  withReference,
} from '../packages/sdk/dist/src/schema/openrpc.js';

const path = fileURLToPath(new URL('../docs/rpc.md', import.meta.url));
const version = JSON.parse(
  readFileSync(new URL('../packages/sdk/package.json', import.meta.url), 'utf8'),
).version;
const before = readFileSync(path, 'utf8');
const after = withReference(before, rpcReferenceMarkdown(openRpcDocument(version)));
if (after !== before) writeFileSync(path, after);
console.log(after === before ? 'docs/rpc.md is up to date' : 'docs/rpc.md regenerated');
