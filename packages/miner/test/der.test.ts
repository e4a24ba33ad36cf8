import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { der } from '../src/index.js';
import { hex } from './helpers.js';

describe('DER encoder', () => {
  test('INTEGER is minimal and non-negative', () => {
    assert.equal(hex(der.integer(0)), '020100');
    assert.equal(hex(der.integer(127)), '02017f');
    assert.equal(hex(der.integer(128)), '02020080');
    assert.equal(hex(der.integer(256)), '02020100');
    assert.equal(hex(der.integer(Uint8Array.of(0, 0, 0x80))), '02020080');
    assert.equal(hex(der.integer(Uint8Array.of(0, 0, 0x01))), '020101');
    assert.throws(() => der.integer(-1n), RangeError);
  });

  test('lengths use the short form below 128 and the minimal long form above', () => {
    assert.equal(hex(der.octetString(new Uint8Array(127))).slice(0, 4), '047f');
    assert.equal(hex(der.octetString(new Uint8Array(200))).slice(0, 6), '0481c8');
    assert.equal(hex(der.octetString(new Uint8Array(300))).slice(0, 8), '0482012c');
  });

  test('OIDs', () => {
    assert.equal(hex(der.oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302');
    assert.equal(hex(der.oid('2.5.29.19')), '0603551d13');
    assert.equal(hex(der.oid('2.23.133.8.3')), '06056781050803');
  });

  test('times: UTCTime through 2049, GeneralizedTime from 2050', () => {
    assert.equal(
      Buffer.from(der.time(new Date('2049-12-31T23:59:59Z')))
        .toString('latin1')
        .slice(2),
      '491231235959Z',
    );
    assert.equal(der.time(new Date('2049-12-31T23:59:59Z'))[0], 0x17);
    assert.equal(
      Buffer.from(der.time(new Date('2050-01-01T00:00:00Z')))
        .toString('latin1')
        .slice(2),
      '20500101000000Z',
    );
    assert.equal(der.time(new Date('2050-01-01T00:00:00Z'))[0], 0x18);
    assert.throws(() => der.time(new Date('2030-01-01T00:00:00.5Z')), RangeError);
  });

  test('named bit strings drop trailing zero bits (KeyUsage)', () => {
    assert.equal(hex(der.namedBits([0])), '03020780'); // digitalSignature
    assert.equal(hex(der.namedBits([5, 6])), '03020106'); // keyCertSign, cRLSign
  });

  test('SET OF is sorted', () => {
    const a = der.integer(2);
    const b = der.integer(1);
    assert.equal(hex(der.setOf(a, b)), `3106${hex(b)}${hex(a)}`);
  });
});
