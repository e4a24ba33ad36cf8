import assert from 'node:assert/strict';
import { type KeyObject, sign } from 'node:crypto';
import { describe, test } from 'node:test';
import { rejects as rejectsWith } from '@unc/test-utils';
import fc from 'fast-check';
import { AttestationError } from '../../src/attestation/errors.js';
import {
  NVIDIA_OPAQUE,
  type NvidiaSpdmInput,
  parseSpdmMeasurements,
  tcbInfoFwids,
  verifyNvidiaSpdm,
} from '../../src/attestation/nvidia-spdm.js';
import { certificateRevocationId, parseCertificate } from '../../src/attestation/x509.js';
import { concatBytes, fromHex, toHex } from '../../src/bytes.js';
import { taggedHash } from '../../src/crypto/hash.js';
import {
  der,
  ext,
  flipS,
  type Issued,
  isHighS,
  issue,
  issueCa,
  ms,
  NVIDIA_AT,
  name,
  nvidiaSample,
  tpmFixture,
} from './helpers.js';

const rejects = (fn: () => unknown, code: string, re?: RegExp) => rejectsWith(fn, AttestationError, code, re);

const nv = nvidiaSample();
const SAMPLE_FWID =
  'f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d';

function sample(over: Partial<NvidiaSpdmInput> = {}): NvidiaSpdmInput {
  return {
    request: nv.request,
    response: nv.response,
    chain: nv.chain,
    roots: nv.roots,
    revokedSerials: new Set(),
    atMs: NVIDIA_AT,
    expectedMessage: nv.nonce,
    vendorId: 'nvidia',
    ...over,
  };
}

const SIGNATURE_LENGTH = 96;

describe('nvidia-spdm: NVIDIA H100 sample', () => {
  test('parses the SPDM 1.1 exchange', () => {
    const r = parseSpdmMeasurements(nv.request, nv.response);
    assert.equal(r.version, 0x11);
    assert.equal(r.blocks.length, 64);
    assert.deepEqual(
      r.blocks.map((b) => b.index),
      Array.from({ length: 64 }, (_, i) => i + 1),
    );
    assert.ok(r.blocks.every((b) => b.value.length === 48));
    assert.equal(toHex(r.requesterNonce), '931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb');
    assert.equal(toHex(r.opaque.get(NVIDIA_OPAQUE.FWID)!), SAMPLE_FWID);
    assert.equal(r.signed.length, nv.report.length - SIGNATURE_LENGTH);
    assert.deepEqual(r.signed, nv.report.subarray(0, nv.report.length - SIGNATURE_LENGTH));
  });

  test('verifies: chip id from the BROM serial, model from the leaf, FWID from TcbInfo', () => {
    const s = verifyNvidiaSpdm(sample());
    assert.equal(s.profile, 'nvidia-spdm');
    assert.deepEqual(s.chipId, taggedHash('UNC/chip-id/nvidia-spdm', fromHex('41431d480fe5e87274')));
    assert.equal(s.modelId, 'gh100-1010-0200-882');
    assert.equal(s.vendorId, 'nvidia');
    assert.deepEqual(s.message, nv.nonce);
    assert.equal(s.details.fwid, SAMPLE_FWID);
    assert.equal(s.details.bromSerial, '41431d480fe5e87274');
    assert.equal(s.details.driverVersion, '550.90.07');
    assert.equal(s.details.measurementBlocks, 64);
    assert.deepEqual(
      tcbInfoFwids(parseCertificate(nv.chain[0]!)).map((f) => toHex(f.digest)),
      [SAMPLE_FWID],
    );
  });

  test('verifies with the root left out of the chain (it comes from the trust registry)', () => {
    assert.equal(verifyNvidiaSpdm(sample({ chain: nv.chain.slice(0, 4) })).modelId, 'gh100-1010-0200-882');
  });

  test('refuses EVERY single flipped byte of the signed part', () => {
    const signedLength = nv.report.length - SIGNATURE_LENGTH;
    const codes = new Map<string, number>();
    for (let i = 0; i < signedLength; i++) {
      const bad = Uint8Array.from(nv.report);
      bad[i]! ^= 1 << (i % 8);
      const input = sample({ request: bad.subarray(0, 37), response: bad.subarray(37) });
      assert.throws(
        () => verifyNvidiaSpdm(input),
        (err: unknown) => {
          assert.ok(err instanceof AttestationError, `byte ${i}: ${String(err)}`);
          assert.ok(
            ['ATTEST_BAD_SIGNATURE', 'ATTEST_MALFORMED'].includes(err.code),
            `byte ${i}: ${err.code}`,
          );
          codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
          return true;
        },
      );
    }
    // Most flips leave a well-formed report whose signature no longer verifies; the rest break the
    // structure (block headers, lengths, versions) and are refused before any signature check.
    assert.ok((codes.get('ATTEST_BAD_SIGNATURE') ?? 0) > signedLength * 0.8, JSON.stringify([...codes]));
  });

  test('refuses every single flipped byte of the signature', () => {
    for (let i = nv.response.length - SIGNATURE_LENGTH; i < nv.response.length; i++) {
      const bad = Uint8Array.from(nv.response);
      bad[i]! ^= 0x80 >> (i % 8);
      rejects(() => verifyNvidiaSpdm(sample({ response: bad })), 'ATTEST_BAD_SIGNATURE');
    }
  });

  test('refuses random multi-byte damage, truncation and extension (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(nv.report.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.integer({ min: -40, max: 40 }),
        (flips, resize) => {
          let bad: Uint8Array = Uint8Array.from(nv.report);
          for (const [at, x] of flips) bad[at]! ^= x;
          if (resize < 0) bad = bad.subarray(0, bad.length + resize);
          if (resize > 0) bad = concatBytes(bad, new Uint8Array(resize));
          assert.throws(
            () => verifyNvidiaSpdm(sample({ request: bad.subarray(0, 37), response: bad.subarray(37) })),
            AttestationError,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  test("accepts the signature's other-S twin: nothing normalises or refuses high-S", () => {
    const sig = nv.response.subarray(nv.response.length - SIGNATURE_LENGTH);
    const twin = flipS('P-384', sig);
    assert.notEqual(isHighS('P-384', sig.subarray(48)), isHighS('P-384', twin.subarray(48)));
    const response = concatBytes(nv.response.subarray(0, nv.response.length - SIGNATURE_LENGTH), twin);
    assert.equal(verifyNvidiaSpdm(sample({ response })).modelId, 'gh100-1010-0200-882');
  });

  test('refuses a report for another nonce', () => {
    const other = Uint8Array.from(nv.nonce);
    other[31]! ^= 1;
    rejects(() => verifyNvidiaSpdm(sample({ expectedMessage: other })), 'ATTEST_WRONG_NONCE');
  });

  test('refuses a chain to another root', () => {
    rejects(() => verifyNvidiaSpdm(sample({ roots: [tpmFixture('root.der')] })), 'ATTEST_UNTRUSTED_ROOT');
    // A vendor root (chain state, not evidence) that does not parse: a state reason, not malformed evidence.
    rejects(
      () => verifyNvidiaSpdm(sample({ roots: [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])] })),
      'ATTEST_UNTRUSTED_ROOT',
    );
    rejects(
      () => verifyNvidiaSpdm(sample({ chain: nv.chain.slice(0, 4), roots: [] })),
      'ATTEST_UNTRUSTED_ROOT',
    );
  });

  test('refuses block times outside the certificates (after notAfter, before notBefore)', () => {
    rejects(
      () => verifyNvidiaSpdm(sample({ atMs: ms('9999-12-31T23:59:59Z') + 1000n })),
      'ATTEST_CERT_EXPIRED',
      /expired/,
    );
    rejects(
      () => verifyNvidiaSpdm(sample({ atMs: ms('2020-10-16T23:59:59Z') })),
      'ATTEST_CERT_EXPIRED',
      /not valid yet/,
    );
    verifyNvidiaSpdm(sample({ atMs: ms('9999-12-31T23:59:59Z') }));
  });

  test('refuses a revoked BROM (per-GPU) certificate and a revoked intermediate', () => {
    const idOf = (serial: string) => {
      const cert = nv.chain.map((d) => parseCertificate(d)).find((c) => c.serialHex === serial)!;
      return certificateRevocationId(cert);
    };
    rejects(
      () => verifyNvidiaSpdm(sample({ revokedSerials: new Set([idOf('41431d480fe5e87274').toUpperCase()]) })),
      'ATTEST_CERT_REVOKED',
    );
    rejects(
      () => verifyNvidiaSpdm(sample({ revokedSerials: new Set([idOf('6afe7184f92232c8df7b242261776e56')]) })),
      'ATTEST_CERT_REVOKED',
    );
  });

  test('refuses a broken, reordered or foreign chain', () => {
    rejects(() => verifyNvidiaSpdm(sample({ chain: [] })), 'ATTEST_MALFORMED');
    rejects(
      () => verifyNvidiaSpdm(sample({ chain: [nv.chain[0]!, ...nv.chain.slice(2)] })),
      'ATTEST_CHAIN_BROKEN',
    );
    // The BROM key did not sign the report.
    rejects(() => verifyNvidiaSpdm(sample({ chain: nv.chain.slice(1) })), 'ATTEST_KEY_USAGE');
    rejects(
      () => verifyNvidiaSpdm(sample({ chain: [tpmFixture('ak-ecc-cert.der'), ...nv.chain.slice(1)] })),
      'ATTEST_MALFORMED',
      /P-384/,
    );
  });

  test('refuses malformed SPDM messages', () => {
    const req = Uint8Array.from(nv.request);
    req[0] = 0x12;
    rejects(() => parseSpdmMeasurements(req, nv.response), 'ATTEST_MALFORMED', /version/);
    const noSig = Uint8Array.from(nv.request);
    noSig[2] = 0;
    rejects(() => parseSpdmMeasurements(noSig, nv.response), 'ATTEST_MALFORMED', /signature/);
    const code = Uint8Array.from(nv.response);
    code[1] = 0x61;
    rejects(() => parseSpdmMeasurements(nv.request, code), 'ATTEST_MALFORMED', /MEASUREMENTS/);
    rejects(
      () => parseSpdmMeasurements(nv.request, concatBytes(nv.response, Uint8Array.of(0))),
      'ATTEST_MALFORMED',
      /after the signature/,
    );
    rejects(() => parseSpdmMeasurements(nv.request.subarray(0, 36), nv.response), 'ATTEST_MALFORMED');
    const blocks = Uint8Array.from(nv.response);
    blocks[4] = 63;
    rejects(() => parseSpdmMeasurements(nv.request, blocks), 'ATTEST_MALFORMED', /record longer/);
  });
});

describe('nvidia-spdm: generated device chain', () => {
  // The shape of NVIDIA's chain, with keys we hold, so the report can be re-signed after changes.
  const root = issueCa('Gen Device Identity CA');
  const ica1 = issueCa('Gen GH100 Identity', root);
  const ica2 = issueCa('Gen Provisioner ICA', ica1);
  const brom = issueCa('Gen GSP BROM', ica2, { serial: 0x41431d480fe5e87275n });
  const roots = [root.der];

  const sanNvidia = (text: string) =>
    ext.raw(
      '2.5.29.17',
      false,
      der.seq(
        der.ctx(0, true, concatBytes(der.oid('1.3.6.1.4.1.412.274.1'), der.ctx(0, true, der.utf8(text)))),
      ),
    );
  const compactTcb = (fwid: Uint8Array) =>
    ext.raw(
      '2.23.133.5.4.1',
      false,
      der.seq(der.int(1), der.seq(der.oid('2.16.840.1.101.3.4.2.2'), der.octet(fwid))),
    );
  // TCG DiceTcbInfo: fwids [6] IMPLICIT SEQUENCE OF FWID.
  const diceTcb = (fwid: Uint8Array) =>
    ext.raw(
      '2.23.133.5.4.1',
      false,
      der.seq(
        der.ctx(0, false, new TextEncoder().encode('NVIDIA')),
        der.ctx(6, true, der.seq(der.oid('2.16.840.1.101.3.4.2.2'), der.octet(fwid))),
      ),
    );

  function leaf(extensions: ReturnType<typeof ext.raw>[], keyAlg: 'P-384' | 'P-256' = 'P-384'): Issued {
    return issue({
      subject: name('Gen GSP FMC LF'),
      issuer: brom,
      keyAlg,
      extensions: ({ ski }) => [ext.ku(0), ext.ski(ski), ext.aki(brom.ski), ...extensions],
    });
  }

  /** The sample exchange with its opaque data edited and re-signed by `key`. */
  function report(
    key: KeyObject,
    edit: (opaque: Map<number, Uint8Array>) => void,
  ): { request: Uint8Array; response: Uint8Array } {
    const parsed = parseSpdmMeasurements(nv.request, nv.response);
    const opaque = new Map(parsed.opaque);
    edit(opaque);
    const tlvs = [...opaque].map(([type, value]) => {
      const h = Buffer.alloc(4);
      h.writeUInt16LE(type, 0);
      h.writeUInt16LE(value.length, 2);
      return concatBytes(h, value);
    });
    const body = concatBytes(...tlvs);
    const recordEnd = 8 + (nv.response[5]! | (nv.response[6]! << 8) | (nv.response[7]! << 16));
    const len = Buffer.alloc(2);
    len.writeUInt16LE(body.length, 0);
    const unsigned = concatBytes(nv.response.subarray(0, recordEnd + 32), len, body);
    const sig = sign('sha384', concatBytes(nv.request, unsigned), { key, dsaEncoding: 'ieee-p1363' });
    return { request: nv.request, response: concatBytes(unsigned, sig) };
  }

  const fwid = fromHex(SAMPLE_FWID);
  const input = (
    l: Issued,
    r: { request: Uint8Array; response: Uint8Array },
    chain?: Uint8Array[],
  ): NvidiaSpdmInput => ({
    ...r,
    chain: chain ?? [l.der, brom.der, ica2.der, ica1.der, root.der],
    roots,
    revokedSerials: new Set(),
    atMs: ms('2030-01-01T00:00:00Z'),
    expectedMessage: nv.nonce,
  });

  test('accepts a re-signed report with the compact and the TCG DiceTcbInfo layouts', () => {
    for (const tcb of [compactTcb, diceTcb]) {
      const l = leaf([sanNvidia('NVIDIA:GH100:0011223344556677'), tcb(fwid)]);
      const s = verifyNvidiaSpdm(
        input(
          l,
          report(l.key, () => {}),
        ),
      );
      assert.equal(s.modelId, 'gh100-1010-0200-882');
      assert.equal(s.details.deviceId, '0011223344556677');
      assert.deepEqual(s.chipId, taggedHash('UNC/chip-id/nvidia-spdm', fromHex('41431d480fe5e87275')));
    }
  });

  test('refuses a report whose FWID is not the one the leaf vouches for', () => {
    const l = leaf([sanNvidia('NVIDIA:GH100:00'), compactTcb(fwid)]);
    const other = Uint8Array.from(fwid);
    other[0]! ^= 1;
    rejects(
      () =>
        verifyNvidiaSpdm(
          input(
            l,
            report(l.key, (o) => o.set(NVIDIA_OPAQUE.FWID, other)),
          ),
        ),
      'ATTEST_FWID_MISMATCH',
      /not the one/,
    );
    rejects(
      () =>
        verifyNvidiaSpdm(
          input(
            l,
            report(l.key, (o) => o.delete(NVIDIA_OPAQUE.FWID)),
          ),
        ),
      'ATTEST_FWID_MISMATCH',
      /no FWID/,
    );
    const bare = leaf([sanNvidia('NVIDIA:GH100:00')]);
    rejects(
      () =>
        verifyNvidiaSpdm(
          input(
            bare,
            report(bare.key, () => {}),
          ),
        ),
      'ATTEST_FWID_MISMATCH',
      /TcbInfo/,
    );
  });

  test('refuses a leaf that names no model', () => {
    const l = leaf([compactTcb(fwid)]);
    rejects(
      () =>
        verifyNvidiaSpdm(
          input(
            l,
            report(l.key, () => {}),
          ),
        ),
      'ATTEST_UNKNOWN_MODEL',
    );
  });

  test('refuses a chain of another length and a leaf key that is not P-384', () => {
    const l = leaf([sanNvidia('NVIDIA:GH100:00'), compactTcb(fwid)]);
    const short = issueCa('Gen BROM directly under ICA', ica1);
    const l2 = issue({
      subject: name('leaf'),
      issuer: short,
      extensions: ({ ski }) => [
        ext.ku(0),
        ext.ski(ski),
        ext.aki(short.ski),
        sanNvidia('NVIDIA:GH100:00'),
        compactTcb(fwid),
      ],
    });
    rejects(
      () =>
        verifyNvidiaSpdm(
          input(
            l2,
            report(l2.key, () => {}),
            [l2.der, short.der, ica1.der, root.der],
          ),
        ),
      'ATTEST_MALFORMED',
      /expected 5/,
    );
    verifyNvidiaSpdm(
      input(
        l,
        report(l.key, () => {}),
      ),
    );
    const p256 = leaf([sanNvidia('NVIDIA:GH100:00'), compactTcb(fwid)], 'P-256');
    rejects(
      () =>
        verifyNvidiaSpdm(
          input(
            p256,
            report(l.key, () => {}),
          ),
        ),
      'ATTEST_MALFORMED',
      /P-384/,
    );
  });

  test('refuses duplicate opaque fields', () => {
    const l = leaf([sanNvidia('NVIDIA:GH100:00'), compactTcb(fwid)]);
    const r = report(l.key, () => {});
    // Append a second FWID field by hand (a Map cannot hold two) and fix the opaque length.
    const parsed = parseSpdmMeasurements(r.request, r.response);
    assert.ok(parsed.opaque.has(NVIDIA_OPAQUE.FWID));
    const recordEnd = 8 + (r.response[5]! | (r.response[6]! << 8) | (r.response[7]! << 16));
    const opaqueAt = recordEnd + 32;
    const opaqueLen = r.response[opaqueAt]! | (r.response[opaqueAt + 1]! << 8);
    const extra = concatBytes(Uint8Array.of(20, 0, 48, 0), fwid);
    const opaque = concatBytes(r.response.subarray(opaqueAt + 2, opaqueAt + 2 + opaqueLen), extra);
    const len = Uint8Array.of(opaque.length & 0xff, opaque.length >> 8);
    const response = concatBytes(
      r.response.subarray(0, opaqueAt),
      len,
      opaque,
      new Uint8Array(SIGNATURE_LENGTH),
    );
    rejects(() => parseSpdmMeasurements(r.request, response), 'ATTEST_MALFORMED', /twice/);
  });
});
