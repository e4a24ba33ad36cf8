/**
 * DER (X.690 §11.5) never encodes a field whose value is its DEFAULT. A certificate that does is a
 * second encoding of the same certificate (another hash, another chip identity where the identity
 * comes from the certificate), so the parser refuses it with ATTEST_MALFORMED. Each case has a
 * control, the same certificate with the field omitted, that parses.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { AttestationError } from '../../src/attestation/errors.js';
import { parseCertificate } from '../../src/attestation/x509.js';
import { der, name } from './helpers.js';

const spki = new Uint8Array(
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }),
);
const ECDSA_SHA256 = der.seq(der.oid('1.2.840.10045.4.3.2'));
const SHA256 = der.seq(der.oid('2.16.840.1.101.3.4.2.1'));

/** An (unsigned: parsing does not check signatures) certificate with the given pieces. */
function cert(opts: {
  version?: Uint8Array | null;
  extensions?: Uint8Array[];
  sigAlg?: Uint8Array;
}): Uint8Array {
  const sigAlg = opts.sigAlg ?? ECDSA_SHA256;
  const version = opts.version === undefined ? der.ctx(0, true, der.int(2)) : opts.version;
  const tbs = der.seq(
    ...(version ? [version] : []),
    der.int(1),
    sigAlg,
    name('issuer'),
    der.seq(der.time('2026-01-01T00:00:00Z'), der.time('2036-01-01T00:00:00Z')),
    name('subject'),
    spki,
    ...(opts.extensions ? [der.ctx(3, true, der.seq(...opts.extensions))] : []),
  );
  return der.seq(tbs, sigAlg, der.bit(new Uint8Array(64)));
}

const basicConstraints = (...fields: Uint8Array[]) =>
  der.seq(der.oid('2.5.29.19'), der.bool(true), der.octet(der.seq(...fields)));
const ski = (critical?: boolean) =>
  der.seq(
    der.oid('2.5.29.14'),
    ...(critical === undefined ? [] : [der.bool(critical)]),
    der.octet(der.octet(new Uint8Array(20).fill(1))),
  );
const pss = (...fields: Uint8Array[]) =>
  der.seq(
    der.oid('1.2.840.113549.1.1.10'),
    der.seq(
      der.ctx(0, true, SHA256),
      der.ctx(1, true, der.seq(der.oid('1.2.840.113549.1.1.8'), SHA256)),
      ...fields,
    ),
  );

function refusedAsDefault(bytes: Uint8Array, field: RegExp): void {
  assert.throws(
    () => parseCertificate(bytes),
    (e: unknown) =>
      e instanceof AttestationError &&
      e.code === 'ATTEST_MALFORMED' &&
      /DEFAULT value and must be omitted/.test(e.message) &&
      field.test(e.message),
  );
}

describe('DER: explicitly encoded DEFAULT values are refused', () => {
  test('version v1 written out as [0] INTEGER 0', () => {
    refusedAsDefault(cert({ version: der.ctx(0, true, der.int(0)) }), /version v1/);
    assert.equal(parseCertificate(cert({ version: null })).version, 1);
  });

  test('an extension marked critical FALSE', () => {
    refusedAsDefault(cert({ extensions: [ski(false)] }), /critical FALSE/);
    assert.equal(parseCertificate(cert({ extensions: [ski()] })).extensions[0]!.critical, false);
    assert.equal(parseCertificate(cert({ extensions: [ski(true)] })).extensions[0]!.critical, true);
  });

  test('basicConstraints with cA FALSE', () => {
    refusedAsDefault(cert({ extensions: [basicConstraints(der.bool(false))] }), /cA FALSE/);
    refusedAsDefault(cert({ extensions: [basicConstraints(der.bool(false), der.int(0))] }), /cA FALSE/);
    assert.deepEqual(parseCertificate(cert({ extensions: [basicConstraints()] })).basicConstraints, {
      ca: false,
      pathLen: null,
    });
    assert.deepEqual(
      parseCertificate(cert({ extensions: [basicConstraints(der.bool(true))] })).basicConstraints,
      {
        ca: true,
        pathLen: null,
      },
    );
  });

  test('RSASSA-PSS saltLength 20 and trailerField 1', () => {
    refusedAsDefault(cert({ sigAlg: pss(der.ctx(2, true, der.int(20))) }), /saltLength 20/);
    refusedAsDefault(
      cert({ sigAlg: pss(der.ctx(2, true, der.int(32)), der.ctx(3, true, der.int(1))) }),
      /trailerField 1/,
    );
    const ok = parseCertificate(cert({ sigAlg: pss(der.ctx(2, true, der.int(32))) }));
    assert.deepEqual(ok.signatureAlgorithm, { kind: 'rsa-pss', hash: 'sha256', saltLength: 32 });
    // Omitted, saltLength is its DEFAULT, 20.
    assert.deepEqual(parseCertificate(cert({ sigAlg: pss() })).signatureAlgorithm, {
      kind: 'rsa-pss',
      hash: 'sha256',
      saltLength: 20,
    });
  });
});
