import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseParams, rpcMethods } from '../src/schema/index.js';
import { DOCS_BEGIN, DOCS_END, openRpcDocument, rpcReferenceMarkdown } from '../src/schema/openrpc.js';

const docsPath = new URL('../../../../docs/rpc.md', import.meta.url);

test('docs/rpc.md carries the reference generated from the schema (run `npm run docs:rpc`)', () => {
  const text = readFileSync(docsPath, 'utf8');
  const begin = text.indexOf(DOCS_BEGIN);
  const end = text.indexOf(DOCS_END);
  assert.ok(begin >= 0 && end > begin, 'docs/rpc.md lost its generated-reference markers');
  const committed = text.slice(begin, end + DOCS_END.length);
  assert.equal(
    committed,
    rpcReferenceMarkdown(openRpcDocument('0.0.0')),
    'docs/rpc.md is stale: run npm run docs:rpc',
  );
});

test('the OpenRPC document lists every method, with params in positional order', () => {
  const doc = openRpcDocument('1.2.3');
  assert.equal(doc.info.version, '1.2.3');
  for (const [name, spec] of Object.entries(rpcMethods)) {
    const m = doc.methods.find((x) => x.name === name);
    assert.ok(m, name);
    assert.deepEqual(
      m.params.map((p) => p.name),
      Object.keys(spec.params),
    );
    assert.equal(typeof m.result.schema, 'object');
  }
});

test('params: positional, named and [named] decode alike; unknown names and surplus positions are refused', () => {
  const entries = rpcMethods.unc_getBlocks.params;
  const a = parseParams(entries, [7, 3]);
  const b = parseParams(entries, { from: '7', count: 3 });
  const c = parseParams(entries, [{ from: 7, count: 3 }]);
  for (const r of [a, b, c]) assert.deepEqual(r, { ok: true, value: { from: 7n, count: 3 } });
  assert.deepEqual(parseParams(entries, [7, 3, 1]), {
    ok: false,
    field: null,
    message: 'expected at most 2 parameter(s) (from, count), got 3',
  });
  const unknown = parseParams(entries, { from: 1, cuont: 3 });
  assert.equal(unknown.ok, false);
  assert.equal(!unknown.ok && unknown.field, 'cuont');
  // Beyond 2^53 only as a decimal string: a float would have lost digits already.
  assert.equal(parseParams(entries, [2 ** 53]).ok, false);
  assert.deepEqual(parseParams(entries, ['9007199254740993']), {
    ok: true,
    value: { from: 9007199254740993n },
  });
});
