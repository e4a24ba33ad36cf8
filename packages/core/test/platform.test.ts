/**
 * The two platform layers (platform/node.ts on node:crypto, platform/web.ts on @noble and
 * @scure, what browsers get) must give the same bytes for every primitive core uses.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import * as nodeP from '../src/platform/node.js';
import * as webP from '../src/platform/web.js';

const toHexNode = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (max = 200) => fc.uint8Array({ maxLength: max });

test('hashes, HMAC, PBKDF2 and the encodings agree', () => {
  fc.assert(
    fc.property(bytes(), bytes(), (a, b) => {
      assert.deepEqual(webP.sha256([a, b]), nodeP.sha256([a, b]));
      assert.deepEqual(webP.sha512([a, b]), nodeP.sha512([a, b]));
      for (const name of ['sha1', 'sha256', 'sha384', 'sha512'] as const)
        assert.deepEqual(webP.digest(name, a), nodeP.digest(name, a));
      assert.deepEqual(webP.hmacSha512(a, b), nodeP.hmacSha512(a, b));
      assert.equal(webP.bytesToHex(a), nodeP.bytesToHex(a));
      assert.deepEqual(webP.hexToBytes(nodeP.bytesToHex(a)), a);
      assert.equal(webP.bytesToLatin1(a), nodeP.bytesToLatin1(a));
      const s1 = nodeP.scratch(a.length);
      const s2 = webP.scratch(a.length);
      nodeP.writeLatin1(s1, 0, nodeP.bytesToLatin1(a), a.length);
      webP.writeLatin1(s2, 0, nodeP.bytesToLatin1(a), a.length);
      assert.deepEqual(new Uint8Array(s1), s2);
      assert.equal(webP.sha256Latin1(s2), nodeP.sha256Latin1(s1));
    }),
    { numRuns: 200 },
  );
  const salt = Uint8Array.of(1, 2, 3);
  assert.deepEqual(webP.pbkdf2Sha512(salt, salt, 10, 64), nodeP.pbkdf2Sha512(salt, salt, 10, 64));
  assert.deepEqual(webP.base64ToBytes('AQID/w=='), nodeP.base64ToBytes('AQID/w=='));
});

test('bytesToLatin1 decodes views at any offset and any range as Buffer#toString does', () => {
  fc.assert(
    fc.property(
      bytes(300),
      fc.nat(310),
      fc.nat(310),
      fc.integer({ min: -5, max: 320 }),
      fc.integer({ min: -5, max: 320 }),
      (all, a, b, from, to) => {
        const start = Math.min(a, all.length);
        const view = all.subarray(start, Math.max(start, Math.min(b, all.length)));
        const reference = Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString(
          'latin1',
          from,
          to,
        );
        assert.equal(nodeP.bytesToLatin1(view, from, to), reference);
        assert.equal(nodeP.bytesToLatin1(view), Buffer.from(view).toString('latin1'));
      },
    ),
    { numRuns: 500 },
  );
});

test('bytesToLatin1 on a SharedArrayBuffer view and on a detached view does as Buffer does', () => {
  const shared = new Uint8Array(new SharedArrayBuffer(64));
  for (let i = 0; i < shared.length; i++) shared[i] = (i * 37 + 0x80) & 0xff;
  const view = shared.subarray(5, 50);
  assert.equal(
    nodeP.bytesToLatin1(view, 3, 40),
    Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('latin1', 3, 40),
  );
  // A detached view (its buffer transferred away) is not decoded as '': Buffer.from refused it, and
  // a state key id of '' for every such view would be one key for all of them.
  const gone = new Uint8Array(new ArrayBuffer(8), 2, 4);
  structuredClone(gone.buffer, { transfer: [gone.buffer] });
  assert.equal(gone.byteLength, 0);
  assert.throws(() => Buffer.from(gone.buffer, gone.byteOffset, gone.byteLength));
  assert.throws(() => nodeP.bytesToLatin1(gone), TypeError);
  assert.equal(nodeP.bytesToLatin1(new Uint8Array(0)), '');
  assert.equal(nodeP.bytesToLatin1(new Uint8Array(8).subarray(3, 3)), '');
});

test('SHA-256 of parts: views at any offset, empty, one part or several, below and above the one-shot size', () => {
  // node.ts hashes one part or a short join in one `crypto.hash` call and streams longer inputs;
  // each path must give the bytes of the views alone, never of the buffers behind them.
  const reference = (parts: Uint8Array[]) => {
    const h = createHash('sha256');
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  };
  const view = fc
    .tuple(fc.uint8Array({ maxLength: 3000 }), fc.nat(16), fc.nat(16))
    .map(([body, before, after]) => {
      // The bytes sit inside a larger buffer, filled with something else around them.
      const backing = new Uint8Array(before + body.length + after).fill(0xee);
      backing.set(body, before);
      return before % 2
        ? backing.subarray(before, before + body.length)
        : Buffer.from(backing.buffer, before, body.length);
    });
  fc.assert(
    fc.property(fc.array(view, { maxLength: 5 }), (parts) => {
      const expected = reference(parts);
      assert.deepEqual(nodeP.sha256(parts), expected);
      assert.deepEqual(webP.sha256(parts), expected);
      assert.equal(nodeP.sha256(parts).constructor, Uint8Array);
    }),
    { numRuns: 300 },
  );
  for (const size of [0, 1, 4095, 4096, 4097, 100_000]) {
    const big = new Uint8Array(size + 3).fill(0x5a).subarray(3);
    assert.deepEqual(nodeP.sha256([big]), reference([big]));
    assert.deepEqual(nodeP.sha256([big.subarray(0, size >> 1), big.subarray(size >> 1)]), reference([big]));
  }
  // Short joins share one scratch buffer in node.ts: a result must not change when the next join
  // (shorter, so any stale byte past its end would show) reuses it.
  const first = nodeP.sha256([new Uint8Array(40).fill(1), new Uint8Array(40).fill(2)]);
  const firstCopy = first.slice();
  assert.deepEqual(
    nodeP.sha256([new Uint8Array(3).fill(7), new Uint8Array(2)]),
    reference([new Uint8Array([7, 7, 7, 0, 0])]),
  );
  assert.deepEqual(first, firstCopy);
  // The shared scratch buffer, attacked: a sequence of joins of any sizes around its limit (some
  // over it, taking the streaming path), every output kept, each checked only after all the later
  // joins reused the buffer; a part may be the output of an earlier call.
  fc.assert(
    fc.property(
      fc.array(fc.array(fc.integer({ min: 0, max: 2100 }), { maxLength: 3 }), { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 0, max: 255 }),
      (calls, fill) => {
        const outputs: { parts: Uint8Array[]; out: Uint8Array }[] = [];
        calls.forEach((sizes, k) => {
          const parts: Uint8Array[] = sizes.map((n, j) => new Uint8Array(n).fill((fill + k * 7 + j) & 0xff));
          if (outputs.length > 0) parts.push(outputs[outputs.length - 1]!.out);
          outputs.push({ parts, out: nodeP.sha256(parts) });
        });
        for (const { parts, out } of outputs) assert.deepEqual(out, reference(parts));
      },
    ),
    { numRuns: 200 },
  );
  assert.equal(
    toHexNode(nodeP.sha256([])),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  );
});

test('scrypt and AES-256-GCM agree; a flipped tag bit fails on both', () => {
  const params = { n: 1024, r: 8, p: 1 };
  const salt = new Uint8Array(32).fill(5);
  const key = nodeP.scrypt('pässword', salt, 32, params);
  assert.deepEqual(webP.scrypt('pässword', salt, 32, params), key);
  const iv = new Uint8Array(12).fill(3);
  const secret = new Uint8Array(32).fill(9);
  const a = nodeP.aes256GcmEncrypt(key, iv, secret, 16);
  const b = webP.aes256GcmEncrypt(key, iv, secret, 16);
  assert.deepEqual(b, a);
  assert.deepEqual(webP.aes256GcmDecrypt(key, iv, a.ciphertext, a.tag), secret);
  const bad = a.tag.slice();
  bad[0]! ^= 1;
  assert.throws(() => nodeP.aes256GcmDecrypt(key, iv, a.ciphertext, bad));
  assert.throws(() => webP.aes256GcmDecrypt(key, iv, a.ciphertext, bad));
});

test('Ed25519: same keys and signatures; each verifies the other', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), bytes(), (seed, msg) => {
      const pub = nodeP.ed25519PublicKeyOf(seed);
      assert.deepEqual(webP.ed25519PublicKeyOf(seed), pub);
      const sig = nodeP.ed25519SignRaw(seed, msg);
      assert.deepEqual(webP.ed25519SignRaw(seed, msg), sig);
      assert.equal(webP.ed25519VerifyRaw(pub, msg, sig), true);
      const other = Uint8Array.from(msg.length ? msg : [0]);
      other[0]! ^= 1;
      assert.equal(webP.ed25519VerifyRaw(pub, other, sig), nodeP.ed25519VerifyRaw(pub, other, sig));
    }),
    { numRuns: 50 },
  );
});

/** What fromHex accepted before hexToBytesChecked (a regular expression, then Buffer's decoder). */
const OLD_HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;
const oldDecode = (hex: string): Uint8Array | null =>
  OLD_HEX_RE.test(hex) ? new Uint8Array(Buffer.from(hex, 'hex')) : null;

test('hexToBytesChecked accepts exactly an even run of hex digits and decodes it as before', () => {
  const hexChar = fc.constantFrom(...'0123456789abcdefABCDEF'.split(''));
  // Mostly valid hex of every length around the in-heap limit (64 bytes), with one character
  // possibly replaced by anything (a non-hex ASCII letter, a space, a non-ASCII character) or
  // one dropped.
  const candidate = fc
    .tuple(
      fc.array(hexChar, { maxLength: 300 }),
      fc.option(
        fc.tuple(
          fc.nat(),
          fc.oneof(
            fc.string({ minLength: 1, maxLength: 1 }),
            fc.string({ minLength: 1, maxLength: 1, unit: 'grapheme' }),
            fc.constantFrom('g', 'G', ' ', 'x', '\u0660', '\uff10', '\u0130', '\ua533', '\u00e0', ''),
          ),
        ),
      ),
    )
    .map(([chars, edit]) => {
      if (edit && chars.length > 0) chars[edit[0] % chars.length] = edit[1];
      return chars.join('');
    });
  fc.assert(
    fc.property(candidate, (hex) => {
      const want = oldDecode(hex);
      for (const impl of [nodeP, webP]) {
        const got = impl.hexToBytesChecked(hex);
        if (want === null) assert.equal(got, null, JSON.stringify(hex));
        else {
          assert.ok(got instanceof Uint8Array && !Buffer.isBuffer(got));
          assert.deepEqual(got, want);
        }
      }
    }),
    { numRuns: 3000 },
  );
  for (const bad of [
    '\u0130\u0130',
    '0\ua533',
    'ab'.repeat(64) + '0\u0130',
    '0',
    'abc',
    'zz',
    '0g',
    'g0',
    '00 ',
    ' 00',
    '0x00',
    '１２',
  ]) {
    assert.equal(nodeP.hexToBytesChecked(bad), null, bad);
    assert.equal(webP.hexToBytesChecked(bad), null, bad);
  }
  // A full 65-byte string with its last character wrong: the path that writes in place.
  const long = `${'ab'.repeat(64)}0z`;
  assert.equal(nodeP.hexToBytesChecked(long), null);
  assert.deepEqual(nodeP.hexToBytesChecked('ab'.repeat(65)), new Uint8Array(65).fill(0xab));
});

test('bytesToHex encodes views at any offset, small in-heap arrays, shared and detached views as Buffer#toString does', () => {
  fc.assert(
    fc.property(bytes(300), fc.nat(310), fc.nat(310), (all, a, b) => {
      const start = Math.min(a, all.length);
      const view = all.subarray(start, Math.max(start, Math.min(b, all.length)));
      const reference = Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('hex');
      assert.equal(nodeP.bytesToHex(view), reference);
      // A copy of at most 64 bytes lives in the JS heap until its buffer is asked for.
      assert.equal(nodeP.bytesToHex(view.slice()), reference);
      assert.equal(webP.bytesToHex(view), reference);
    }),
    { numRuns: 500 },
  );
  const shared = new Uint8Array(new SharedArrayBuffer(64));
  for (let i = 0; i < shared.length; i++) shared[i] = (i * 37 + 0x80) & 0xff;
  assert.equal(nodeP.bytesToHex(shared.subarray(5, 50)), Buffer.from(shared.subarray(5, 50)).toString('hex'));
  const detached = new Uint8Array(8);
  structuredClone(detached.buffer, { transfer: [detached.buffer] });
  assert.throws(() => Buffer.from(detached.buffer, detached.byteOffset, detached.byteLength));
  assert.throws(() => nodeP.bytesToHex(detached));
});

test('hexToBytesChecked: every UTF-16 code unit, in either place of a pair, in both the pooled and in-place paths', () => {
  // Buffer's decoder sees only a character's low byte, so each of the 65,536 code units is tried
  // (not a sample): '\u0130' or '\ud830' must not pass for '0'. A pair at the start, in the middle
  // and at the end of strings shorter and longer than the 64-byte split.
  const reference = (hex: string): string | null =>
    OLD_HEX_RE.test(hex) ? Buffer.from(hex, 'hex').toString('hex') : null;
  const shortPad = 'a0';
  const longPad = 'Fe'.repeat(40);
  let mismatches = 0;
  for (let c = 0; c < 0x10000; c++) {
    const ch = String.fromCharCode(c);
    for (const pair of [`${ch}0`, `0${ch}`, `${ch}${ch}`]) {
      for (const hex of [
        pair,
        shortPad + pair,
        pair + longPad,
        longPad + pair + longPad,
        longPad + longPad + pair,
      ]) {
        const want = reference(hex);
        for (const impl of [nodeP, webP]) {
          const got = impl.hexToBytesChecked(hex);
          if ((got === null ? null : Buffer.from(got).toString('hex')) !== want && mismatches++ < 5)
            assert.fail(`code unit ${c.toString(16)} in ${JSON.stringify(hex)}: ${String(got)} vs ${want}`);
        }
      }
    }
  }
  // Surrogate pairs (one code point, two code units) and other well-formed astral characters.
  for (const s of [
    '\u{1F600}',
    `0\u{1F600}0`,
    '\ud830\udc30',
    `${longPad}\ud830\udc30`,
    '\u{10030}'.repeat(2),
  ]) {
    assert.equal(nodeP.hexToBytesChecked(s), null, s);
    assert.equal(webP.hexToBytesChecked(s), null, s);
  }
});

test('the web platform exports every function the Node one does (the browser build swaps one for the other)', () => {
  // package.json's "browser" field maps platform/node.js to platform/web.js: a function added to
  // one only (as hexToBytesChecked was, for fromHex) is undefined in the explorer and the SDK.
  const shape = (m: object) =>
    Object.entries(m)
      .map(([name, v]) => `${name}:${typeof v}`)
      .sort();
  assert.deepEqual(shape(webP), shape(nodeP));
});
