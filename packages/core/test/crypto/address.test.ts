import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bech32, bech32m } from '@scure/base';
import fc from 'fast-check';
import { fromHex, toHex } from '../../src/bytes.js';
import { addressFromPublicKey, decodeAddress, encodeAddress, isAddress } from '../../src/crypto/address.js';
import { sha256 } from '../../src/crypto/hash.js';

// BIP-173, "Test vectors": valid bech32 strings.
const BIP173_VALID = [
  'A12UEL5L',
  'a12uel5l',
  'an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs',
  'abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw',
  '11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j',
  'split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w',
  '?1ezyfcl',
];

// BIP-173, "Test vectors": invalid bech32 strings, with the reason the BIP gives.
const BIP173_INVALID: [string, string][] = [
  ['\x201nwldj5', 'HRP character out of range'],
  ['\x7f1axkwrx', 'HRP character out of range'],
  ['\x801eym55h', 'HRP character out of range'],
  [
    'an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx',
    'overall max length exceeded',
  ],
  ['pzry9x0s0muk', 'No separator character'],
  ['1pzry9x0s0muk', 'Empty HRP'],
  ['x1b4n0q5v', 'Invalid data character'],
  ['li1dgmt3', 'Too short checksum'],
  ['de1lg7wt\xff', 'Invalid character in checksum'],
  ['A1G7SGD8', 'checksum calculated with uppercase form of HRP'],
  ['10a06t8', 'empty HRP'],
  ['1qzzfhee', 'empty HRP'],
];

describe('address: BIP-173 bech32 checksum (the codec addresses are built on)', () => {
  test('valid strings decode and re-encode to their lower-case form', () => {
    for (const text of BIP173_VALID) {
      const { prefix, words } = bech32.decode(text as `${string}1${string}`);
      assert.equal(bech32.encode(prefix, words), text.toLowerCase(), text);
    }
  });

  test('valid bech32 strings are not valid bech32m (the checksum constant differs)', () => {
    for (const text of BIP173_VALID) {
      assert.throws(() => bech32m.decode(text as `${string}1${string}`), text);
    }
  });

  test('invalid strings are rejected', () => {
    for (const [text, reason] of BIP173_INVALID) {
      assert.throws(() => bech32.decode(text as `${string}1${string}`), `${JSON.stringify(text)}: ${reason}`);
    }
  });

  test('a single changed character breaks the checksum', () => {
    const text = 'abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw';
    const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
    for (let i = 7; i < text.length; i++) {
      for (const ch of charset) {
        if (ch === text[i]) continue;
        const changed = `${text.slice(0, i)}${ch}${text.slice(i + 1)}`;
        assert.throws(() => bech32.decode(changed as `${string}1${string}`), changed);
      }
    }
  });
});

// Pinned so that a change to the derivation or the prefix fails loudly instead of quietly moving
// every account; the strings were cross-checked with a separate transcription of BIP-173's Python
// reference encoder, not only with the code under test.
const RFC8032_TEST1_PUBLIC = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const PINNED_ZERO = 'unc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqvwewtr';
const PINNED_TEST1 = 'unc1y8lrrhap2j3xzcntlp2qgm7jyudhhm2t8nw8s8';
const PINNED_0_TO_19 = 'unc1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnumgta8';

describe('address: derivation and encoding', () => {
  test('address is the first 20 bytes of SHA-256 of the public key', () => {
    const publicKey = fromHex(RFC8032_TEST1_PUBLIC);
    const address = addressFromPublicKey(publicKey);
    assert.equal(address.length, 20);
    assert.deepEqual(address, sha256(publicKey).slice(0, 20));
  });

  test('pinned encodings', () => {
    assert.equal(encodeAddress(new Uint8Array(20)), PINNED_ZERO);
    assert.equal(encodeAddress(addressFromPublicKey(fromHex(RFC8032_TEST1_PUBLIC))), PINNED_TEST1);
    assert.equal(
      toHex(decodeAddress(PINNED_TEST1)),
      toHex(addressFromPublicKey(fromHex(RFC8032_TEST1_PUBLIC))),
    );
    assert.equal(encodeAddress(fromHex('000102030405060708090a0b0c0d0e0f10111213')), PINNED_0_TO_19);
  });

  test('encoding is 42 lower-case characters starting "unc1"', () => {
    const text = encodeAddress(new Uint8Array(20).fill(0xab));
    assert.equal(text.length, 42);
    assert.match(text, /^unc1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{38}$/);
  });

  test('round trip for random addresses, including the upper-case form', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), (address) => {
        const text = encodeAddress(address);
        assert.deepEqual(decodeAddress(text), address);
        assert.deepEqual(decodeAddress(text.toUpperCase()), address);
        assert.equal(isAddress(text), true);
      }),
    );
  });

  test('addressFromPublicKey and encodeAddress refuse wrong lengths', () => {
    for (const length of [0, 20, 31, 33]) {
      assert.throws(() => addressFromPublicKey(new Uint8Array(length)), { code: 'BAD_KEY' });
    }
    for (const length of [0, 19, 21, 32]) {
      assert.throws(() => encodeAddress(new Uint8Array(length)), { code: 'BAD_ADDRESS' });
    }
  });
});

function rejects(text: string, reason: RegExp): void {
  assert.throws(
    () => decodeAddress(text),
    (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.equal((error as { code?: unknown }).code, 'BAD_ADDRESS');
      assert.ok(error.message.startsWith('invalid address "'), error.message);
      assert.match(error.message, reason);
      return true;
    },
  );
  assert.equal(isAddress(text), false);
}

describe('address: strict decoding', () => {
  const good = encodeAddress(fromHex('000102030405060708090a0b0c0d0e0f10111213'));

  test('wrong prefix, even with a valid checksum', () => {
    rejects(bech32.encode('bc', bech32.toWords(new Uint8Array(20))), /wrong prefix "bc"/);
    rejects(bech32.encode('uncx', bech32.toWords(new Uint8Array(20))), /wrong prefix "uncx"/);
    rejects(bech32.encode('un', bech32.toWords(new Uint8Array(20))), /wrong prefix "un"/);
  });

  test('bad checksum: every single-character change is caught', () => {
    const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
    for (let i = 4; i < good.length; i++) {
      const replacement = charset[(charset.indexOf(good[i]!) + 1) % 32]!;
      rejects(`${good.slice(0, i)}${replacement}${good.slice(i + 1)}`, /bad checksum/);
    }
  });

  test('bech32m checksum is not accepted', () => {
    rejects(bech32m.encode('unc', bech32m.toWords(new Uint8Array(20))), /bad checksum/);
  });

  test('mixed case', () => {
    rejects(`UNC${good.slice(3)}`, /mixed case/);
    rejects(`${good.slice(0, 4)}${good[4]!.toUpperCase()}${good.slice(5)}`, /mixed case/);
  });

  test('payload must be exactly 20 bytes', () => {
    for (const length of [0, 1, 19, 21, 32]) {
      rejects(
        bech32.encode('unc', bech32.toWords(new Uint8Array(length))),
        /payload is \d+ bytes, expected 20/,
      );
    }
  });

  test('malformed strings', () => {
    rejects('', /empty/);
    rejects('unc', /separator/);
    rejects('uncqqqqqq', /separator/);
    rejects('unc1', /too short/);
    rejects(`${good.slice(0, 10)}b${good.slice(11)}`, /invalid character "b"/);
    rejects(`${good} `, /invalid character " "/);
    rejects(`unc1${'q'.repeat(100)}`, /too long/);
  });

  test('non-strings are rejected with BAD_ADDRESS, and isAddress is false', () => {
    assert.throws(() => decodeAddress(42 as unknown as string), { code: 'BAD_ADDRESS' });
    assert.equal(isAddress(undefined), false);
    assert.equal(isAddress(null), false);
    assert.equal(isAddress(new Uint8Array(20)), false);
  });
});

test('addresses of recently seen keys are remembered, not shared: each caller gets its own bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
      const expected = sha256(key).slice(0, 20);
      const first = addressFromPublicKey(key);
      assert.deepEqual(first, expected);
      first.fill(0xff);
      // A caller that writes into its copy changes nobody else's.
      assert.deepEqual(addressFromPublicKey(key), expected);
      assert.notEqual(addressFromPublicKey(key), addressFromPublicKey(key));
    }),
    { numRuns: 200 },
  );
});
