/**
 * The choice of connections closed for the bound on what all connections hold unread together
 * (p2p/write-gate.ts `unreadToClose`, p2p/libp2p.ts `closeUnread`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { unreadToClose } from '../src/p2p/write-gate.js';

const MiB = 1024 * 1024;

test('an honest burst above an attacker’s many connections each held steadily just below it: the attacker’s are closed, not the honest one', () => {
  // 30 connections each holding 9 MiB unread at this look and the one before: 270 MiB, steady.
  // The honest peer holds 10 MiB of a proposal it is reading, none a look ago.
  const holding = [
    ...Array.from({ length: 30 }, (_, i) => ({ connection: `evil-${i}`, bytes: 9 * MiB, before: 9 * MiB })),
    { connection: 'honest', bytes: 10 * MiB, before: 0 },
  ];
  const closed = unreadToClose(holding, 256 * MiB);
  assert.ok(!closed.includes('honest'), `the honest reader closed: ${closed.join(',')}`);
  assert.deepEqual(closed, ['evil-0', 'evil-1', 'evil-2']);
});

test('nothing is closed while all hold no more than the bound together', () => {
  assert.deepEqual(unreadToClose([{ connection: 'a', bytes: 5, before: 5 }], 5), []);
});

test('what is left open always fits the bound, and only as many are closed as that takes', () => {
  const holding = fc.array(fc.record({ bytes: fc.nat(64 * MiB), before: fc.nat(64 * MiB) }), {
    maxLength: 60,
  });
  fc.assert(
    fc.property(holding, fc.nat(512 * MiB), (hs, maxTotal) => {
      const tagged = hs.map((h, i) => ({ ...h, connection: i }));
      const closed = new Set(unreadToClose(tagged, maxTotal));
      const left = tagged.filter((h) => !closed.has(h.connection)).reduce((s, h) => s + h.bytes, 0);
      const total = tagged.reduce((s, h) => s + h.bytes, 0);
      assert.ok(left <= maxTotal || closed.size === tagged.length);
      if (total <= maxTotal) assert.equal(closed.size, 0);
      // Minimal in order: without the last one closed, the rest would not fit.
      const order = unreadToClose(tagged, maxTotal);
      if (order.length > 0) {
        const last = tagged[order.at(-1)!]!;
        assert.ok(left + last.bytes > maxTotal);
      }
    }),
  );
});
