import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { rejects as rejectsWith } from '@unc/test-utils';
import fc from 'fast-check';
import {
  children,
  parseDer,
  readOid,
  readTime,
  readUnsignedIntegerBytes,
} from '../../src/attestation/der.js';
import { AttestationError } from '../../src/attestation/errors.js';
import {
  type Certificate,
  certificateRevocationId,
  getExtension,
  normalizeRevocationId,
  normalizeSerialHex,
  parseCertificate,
  parseSubjectPublicKeyInfo,
  subjectAltNames,
  verifyChain,
  X509_OID,
} from '../../src/attestation/x509.js';
import { concatBytes, fromHex, toHex } from '../../src/bytes.js';
import {
  der,
  ext,
  type Issued,
  issue,
  issueCa,
  ms,
  NVIDIA_AT,
  name,
  nvidiaSample,
  TPM_AT,
  tpmFixture,
} from './helpers.js';

const rejects = (fn: () => unknown, code: string, re?: RegExp) => rejectsWith(fn, AttestationError, code, re);

const none = new Set<string>();

describe('DER reader', () => {
  test('reads nested structures and refuses trailing bytes', () => {
    const node = parseDer(der.seq(der.int(5), der.oid('1.2.840.10045.3.1.7')));
    const [i, o] = children(node);
    assert.deepEqual(readUnsignedIntegerBytes(i, 'i'), Uint8Array.of(5));
    assert.equal(readOid(o, 'o'), '1.2.840.10045.3.1.7');
    rejects(() => parseDer(concatBytes(der.int(5), Uint8Array.of(0))), 'ATTEST_MALFORMED', /trailing/);
  });

  for (const [label, hex, re] of [
    ['indefinite length', '3080020105 0000', /indefinite/],
    ['long form for a short length', '308103020105', /long form/],
    ['length with a leading zero', '30820003020105', /leading zero/],
    ['length past the end', '3005020105', /past the end/],
    ['multi-byte tag', '1f8101 00', /multi-byte/],
  ] as const) {
    test(`refuses ${label}`, () =>
      rejects(() => parseDer(fromHex(hex.replace(/ /g, ''))), 'ATTEST_MALFORMED', re));
  }

  test('refuses non-minimal and negative integers, bad booleans, bad OIDs', () => {
    rejects(
      () => readUnsignedIntegerBytes(parseDer(fromHex('02020005')), 'x'),
      'ATTEST_MALFORMED',
      /minimal/,
    );
    rejects(() => readUnsignedIntegerBytes(parseDer(fromHex('020180')), 'x'), 'ATTEST_MALFORMED', /negative/);
    assert.deepEqual(readUnsignedIntegerBytes(parseDer(fromHex('02020080')), 'x'), Uint8Array.of(0x80));
    rejects(() => readOid(parseDer(fromHex('0603808001')), 'x'), 'ATTEST_MALFORMED', /leading zero/);
    rejects(() => readOid(parseDer(fromHex('060181')), 'x'), 'ATTEST_MALFORMED', /ends inside/);
    const cert = issueCa('bool test');
    // Rewrite the critical flag FF of basicConstraints to 01: a BER-only boolean.
    const bad = Uint8Array.from(cert.der);
    const at = Buffer.from(bad).indexOf(Buffer.from('0101ff', 'hex'));
    bad[at + 2] = 0x01;
    rejects(() => parseCertificate(bad), 'ATTEST_MALFORMED', /BOOLEAN/);
  });

  test('reads UTCTime and GeneralizedTime, including the 1950/2049 pivot and year 9999', () => {
    const t = (hex: string) => readTime(parseDer(fromHex(hex)), 't');
    const utc = (s: string) => `170d${Buffer.from(s).toString('hex')}`;
    const gen = (s: string) => `180f${Buffer.from(s).toString('hex')}`;
    assert.equal(t(utc('491231235959Z')), BigInt(Date.parse('2049-12-31T23:59:59Z') / 1000));
    assert.equal(t(utc('500101000000Z')), BigInt(Date.parse('1950-01-01T00:00:00Z') / 1000));
    assert.equal(t(gen('99991231235959Z')), BigInt(Date.parse('9999-12-31T23:59:59Z') / 1000));
    assert.equal(t(gen('20240229120000Z')), BigInt(Date.parse('2024-02-29T12:00:00Z') / 1000));
    // Year 0050 must not be read as 1950, which is what Date.UTC would do.
    assert.equal(t(gen('00500101000000Z')), -60589296000n);
    rejects(() => t(gen('20230229000000Z')), 'ATTEST_MALFORMED', /impossible date/);
    rejects(() => t(utc('2301010000Z')), 'ATTEST_MALFORMED');
    rejects(() => t(gen('20230101000000.5Z'.slice(0, 15))), 'ATTEST_MALFORMED');
    rejects(() => t(utc('230101000000+')), 'ATTEST_MALFORMED', /UTC/);
    rejects(() => t(utc('231301000000Z')), 'ATTEST_MALFORMED');
    rejects(() => t(utc('230101240000Z')), 'ATTEST_MALFORMED');
  });

  test('random bytes never escape as anything but AttestationError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          parseCertificate(bytes);
        } catch (err) {
          assert.ok(err instanceof AttestationError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('X.509 parser', () => {
  const nv = nvidiaSample();

  test('agrees with node:crypto on every sample certificate', () => {
    const all = [
      ...nv.chain,
      ...[
        'root.der',
        'int-ecc.der',
        'int-rsa.der',
        'ak-ecc-cert.der',
        'ak-rsa-cert.der',
        'ak-rsapss-cert.der',
      ].map(tpmFixture),
    ];
    for (const d of all) {
      const ours = parseCertificate(d);
      const theirs = new X509Certificate(d);
      assert.equal(ours.serialHex, normalizeSerialHex(theirs.serialNumber));
      assert.equal(ours.notBeforeMs, BigInt(Date.parse(theirs.validFrom)));
      assert.equal(ours.notAfterMs, BigInt(Date.parse(theirs.validTo)));
      assert.deepEqual(
        Buffer.from(ours.publicKey.der),
        theirs.publicKey.export({ type: 'spki', format: 'der' }),
        'SubjectPublicKeyInfo',
      );
      assert.equal(ours.basicConstraints?.ca ?? false, theirs.ca);
      const cn = ours.subject.attributes.find((a) => a.oid === '2.5.4.3')?.value;
      assert.ok(cn && theirs.subject.includes(`CN=${cn}`), `${cn} in ${theirs.subject}`);
    }
  });

  test('reads the NVIDIA leaf and BROM certificates field by field', () => {
    const leaf = parseCertificate(nv.chain[0]!);
    const brom = parseCertificate(nv.chain[1]!);
    assert.equal(leaf.version, 3);
    assert.equal(leaf.serialHex, '53c22ba15e5d68088282da074ed9fb37aa585771');
    assert.equal(brom.serialHex, '41431d480fe5e87274');
    assert.equal(
      leaf.subject.text,
      'serialNumber=53C22BA15E5D68088282DA074ED9FB37AA585771, C=US, O=NVIDIA Corporation, CN=GH100 A01 GSP FMC LF',
    );
    assert.equal(leaf.issuer.text, brom.subject.text);
    assert.deepEqual(leaf.issuer.der, brom.subject.der);
    assert.equal(leaf.notBeforeMs, ms('2020-10-17T00:00:00Z'));
    assert.equal(leaf.notAfterMs, ms('9999-12-31T23:59:59Z'));
    assert.deepEqual(leaf.signatureAlgorithm, { kind: 'ecdsa', hash: 'sha384' });
    assert.equal(leaf.publicKey.key.kind, 'ec');
    assert.equal(leaf.publicKey.key.kind === 'ec' && leaf.publicKey.key.curve, 'P-384');
    assert.equal(toHex(leaf.subjectKeyIdentifier!), 'd3c22ba15e5d68088282da074ed9fb37aa585771');
    assert.equal(toHex(leaf.authorityKeyIdentifier!), 'cfcc716b5338f47ad0ed52f49a9edec8faca2a4f');
    assert.deepEqual(leaf.authorityKeyIdentifier, brom.subjectKeyIdentifier);
    assert.equal(leaf.basicConstraints, null);
    assert.equal(leaf.keyUsage?.digitalSignature, true);
    assert.equal(leaf.keyUsage?.keyCertSign, false);
    assert.deepEqual(brom.basicConstraints, { ca: true, pathLen: null });
    assert.equal(brom.keyUsage?.keyCertSign, true);
    const tcb = getExtension(leaf, X509_OID.diceTcbInfo);
    assert.ok(tcb);
    assert.equal(tcb.critical, false);
    assert.equal(
      toHex(tcb.value.subarray(-48)),
      'f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d',
    );
    const san = subjectAltNames(leaf);
    assert.equal(san.length, 1);
    assert.equal(san[0]!.kind, 'otherName');
  });

  test('reads RSA keys and RSASSA-PSS signature parameters', () => {
    const pss = parseCertificate(tpmFixture('ak-rsapss-cert.der'));
    assert.deepEqual(pss.signatureAlgorithm, { kind: 'rsa-pss', hash: 'sha256', saltLength: 32 });
    assert.equal(pss.publicKey.key.kind, 'rsa');
    assert.equal(pss.publicKey.key.kind === 'rsa' && pss.publicKey.key.bits, 2048);
    assert.equal(pss.publicKey.key.kind === 'rsa' && toHex(pss.publicKey.key.exponent), '010001');
    const rsa = parseCertificate(tpmFixture('ak-rsa-cert.der'));
    assert.deepEqual(rsa.signatureAlgorithm, { kind: 'rsa-pkcs1', hash: 'sha256' });
    const root = parseCertificate(tpmFixture('root.der'));
    assert.equal(root.publicKey.key.kind === 'ec' && root.publicKey.key.curve, 'P-384');
  });

  test('refuses a certificate whose inner and outer signature algorithms differ', () => {
    const c = issueCa('mismatch');
    const bytes = Buffer.from(c.der);
    // The algorithm identifier appears twice; change only the last (outer) copy to SHA-256.
    const alg = Buffer.from(der.seq(der.oid('1.2.840.10045.4.3.3')));
    const at = bytes.lastIndexOf(alg);
    const tampered = Buffer.concat([
      bytes.subarray(0, at),
      der.seq(der.oid('1.2.840.10045.4.3.2')),
      bytes.subarray(at + alg.length),
    ]);
    rejects(() => parseCertificate(tampered), 'ATTEST_MALFORMED', /inside and outside/);
  });

  test('refuses duplicate extensions and unsupported keys', () => {
    const dup = issue({ subject: name('dup'), extensions: ({ ski }) => [ext.ski(ski), ext.ski(ski)] });
    rejects(() => parseCertificate(dup.der), 'ATTEST_MALFORMED', /twice/);
    // secp256k1 is not a curve any trusted device uses.
    const k1 = issue({
      subject: name('k1'),
      issuer: issueCa('k1 issuer'),
      keyPair: generateKeyPairSync('ec', { namedCurve: 'secp256k1' }),
    });
    rejects(() => parseCertificate(k1.der), 'ATTEST_MALFORMED', /unsupported EC curve/);
    const small = issue({
      subject: name('rsa1024'),
      issuer: issueCa('rsa issuer'),
      keyPair: generateKeyPairSync('rsa', { modulusLength: 1024 }),
    });
    rejects(() => parseCertificate(small.der), 'ATTEST_MALFORMED', /1024 bits/);
  });

  test('attack: RSA keys are bounded to 2048..4096 bits and exponents 3..65537 (the cost of a verification)', () => {
    // A verification costs about (exponent bits) × (modulus bits)²: an 8,192-bit key with a 32-bit
    // exponent cost ~35 RSA-2048 verifications, several per failing (so free) registration.
    const spki = (bits: number, e: bigint) => {
      const n = new Uint8Array(bits / 8 + (bits % 8 ? 1 : 0)).fill(0xab);
      n[0] = bits % 8 ? 1 << ((bits % 8) - 1) : 0x80;
      n[n.length - 1] = 0x01;
      return der.seq(
        der.seq(der.oid('1.2.840.113549.1.1.1'), der.nul()),
        der.bit(der.seq(der.uint(n), der.int(e))),
      );
    };
    const bits = (b: Uint8Array) => {
      const k = parseSubjectPublicKeyInfo(b).key;
      return k.kind === 'rsa' ? k.bits : 0;
    };
    assert.equal(bits(spki(2048, 65537n)), 2048);
    assert.equal(bits(spki(4096, 65537n)), 4096);
    assert.equal(bits(spki(2048, 3n)), 2048);
    rejects(() => parseSubjectPublicKeyInfo(spki(4097, 65537n)), 'ATTEST_MALFORMED', /4097 bits/);
    rejects(() => parseSubjectPublicKeyInfo(spki(8192, 65537n)), 'ATTEST_MALFORMED', /8192 bits/);
    rejects(() => parseSubjectPublicKeyInfo(spki(2048, 0xffffffffn)), 'ATTEST_MALFORMED', /exponent/);
    rejects(() => parseSubjectPublicKeyInfo(spki(2048, 65539n)), 'ATTEST_MALFORMED', /exponent/);
  });
});

describe('verifyChain', () => {
  test('a chain whose last link does not verify with the trusted root matched by key id: untrusted root, not a bad signature', () => {
    // The roots are chain state (governance): another root of the same key identifier (a re-keyed
    // root) makes the same evidence pass, so the refusal must not read as bytes bad for good.
    const real = issueCa('Look-alike Root');
    const rekeyed = issueCa('Look-alike Root', undefined, {
      extensions: () => [ext.ca(), ext.ku(5, 6), ext.ski(real.ski)],
    });
    const leaf = parseCertificate(issueCa('Leaf under it', real).der);
    const rootOf = (c: typeof real) => parseCertificate(c.der);
    assert.equal(verifyChain([leaf], [rootOf(real)], TPM_AT, new Set()).path.length, 2);
    assert.equal(verifyChain([leaf], [rootOf(rekeyed), rootOf(real)], TPM_AT, new Set()).path.length, 2);
    assert.throws(
      () => verifyChain([leaf], [rootOf(rekeyed)], TPM_AT, new Set()),
      (e: unknown) => e instanceof AttestationError && e.code === 'ATTEST_UNTRUSTED_ROOT',
    );
    // That link is checked first: a refusal that blames no relay costs one signature, not every
    // forged link below it (whose own failure, bytes bad whatever the state, would blame the relay).
    const intermediate = issueCa('Intermediate', real);
    const impostor = issueCa('Intermediate', undefined, {
      extensions: () => [ext.ca(), ext.ku(5, 6), ext.ski(intermediate.ski)],
    });
    const forgedLeaf = parseCertificate(issueCa('Forged leaf', { ...impostor, ski: intermediate.ski }).der);
    const forged = [forgedLeaf, parseCertificate(intermediate.der)];
    assert.throws(
      () => verifyChain(forged, [rootOf(real)], TPM_AT, new Set()),
      (e: unknown) => e instanceof AttestationError && e.code === 'ATTEST_BAD_SIGNATURE',
    );
    assert.throws(
      () => verifyChain(forged, [rootOf(rekeyed)], TPM_AT, new Set()),
      (e: unknown) => e instanceof AttestationError && e.code === 'ATTEST_UNTRUSTED_ROOT',
    );
  });

  const nv = nvidiaSample();
  const nvChain = nv.chain.map(parseCertificate);
  const nvRoot = nv.roots.map(parseCertificate);
  const tpmRoot = parseCertificate(tpmFixture('root.der'));
  const intEcc = parseCertificate(tpmFixture('int-ecc.der'));
  const akEcc = parseCertificate(tpmFixture('ak-ecc-cert.der'));

  test('verifies the NVIDIA chain with and without the root included', () => {
    const withRoot = verifyChain(nvChain, nvRoot, NVIDIA_AT, none);
    assert.equal(withRoot.path.length, 5);
    assert.equal(withRoot.anchor.subject.text, 'CN=NVIDIA Device Identity CA, O=NVIDIA');
    const withoutRoot = verifyChain(nvChain.slice(0, 4), nvRoot, NVIDIA_AT, none);
    assert.equal(withoutRoot.path.length, 5);
  });

  test('verifies the TPM vendor chains (ECDSA P-384/P-256 and RSA PKCS#1 / PSS links)', () => {
    assert.equal(verifyChain([akEcc, intEcc], [tpmRoot], TPM_AT, none).path.length, 3);
    const intRsa = parseCertificate(tpmFixture('int-rsa.der'));
    for (const f of ['ak-rsa-cert.der', 'ak-rsapss-cert.der']) {
      assert.equal(
        verifyChain([parseCertificate(tpmFixture(f)), intRsa], [tpmRoot], TPM_AT, none).path.length,
        3,
      );
    }
  });

  test('refuses chains to another root', () => {
    rejects(() => verifyChain(nvChain, [tpmRoot], NVIDIA_AT, none), 'ATTEST_UNTRUSTED_ROOT');
    rejects(() => verifyChain([akEcc, intEcc], nvRoot, TPM_AT, none), 'ATTEST_UNTRUSTED_ROOT');
    rejects(() => verifyChain([akEcc, intEcc], [], TPM_AT, none), 'ATTEST_UNTRUSTED_ROOT');
  });

  test('never links by names alone', () => {
    // Same subject name as the real intermediate, issued by the real root, different key.
    const lookalike = parseCertificate(tpmFixture('impostor-lookalike.der'));
    assert.deepEqual(lookalike.subject.der, intEcc.subject.der);
    rejects(() => verifyChain([akEcc, lookalike], [tpmRoot], TPM_AT, none), 'ATTEST_CHAIN_BROKEN', /key/);
    // Same name and a forged SKI equal to the real one: only the signature can tell.
    const forged = parseCertificate(tpmFixture('impostor-forged-ski.der'));
    assert.deepEqual(forged.subjectKeyIdentifier, intEcc.subjectKeyIdentifier);
    rejects(() => verifyChain([akEcc, forged], [tpmRoot], TPM_AT, none), 'ATTEST_BAD_SIGNATURE');
    // A root with the right name but another key is not the trust anchor.
    const fakeRoot = issueCa('NVIDIA Device Identity CA');
    const fake = parseCertificate(fakeRoot.der);
    rejects(() => verifyChain(nvChain.slice(0, 4), [fake], NVIDIA_AT, none), 'ATTEST_UNTRUSTED_ROOT');
  });

  test('attack: a made-up chain costs one verification: signatures are checked from the anchor down', () => {
    // Names and key identifiers are public, so a chain of the attacker's own CAs passes every cheap
    // check and links up to the real root. Checked leaf first, every link but the last verified
    // (with keys of the attacker's choosing) before the one against the root failed.
    const root = issueCa('Vendor Root');
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    const caExts =
      (parentSki: Uint8Array) =>
      ({ ski }: { ski: Uint8Array }) => [ext.ca(), ext.ku(5), ext.ski(ski), ext.aki(parentSki)];
    // Claims the real root as issuer, signed by another key.
    const top = issue({
      subject: name('Fake Top'),
      issuer: { ...root, key: stranger },
      extensions: caExts(root.ski),
    });
    // Badly signed too, but below the top: with the anchor checked first it is never reached.
    const mid = issue({
      subject: name('Fake Mid'),
      issuer: { ...top, key: stranger },
      extensions: caExts(top.ski),
    });
    const leaf = issue({ subject: name('Fake Leaf'), issuer: mid });
    rejects(
      () =>
        verifyChain(
          [leaf, mid, top].map((c) => parseCertificate(c.der)),
          [parseCertificate(root.der)],
          TPM_AT,
          none,
        ),
      // The top link is checked first and is the one to a root from chain state: a state reason.
      'ATTEST_UNTRUSTED_ROOT',
      /CN=Fake Top was not issued by the key of the trusted root CN=Vendor Root/,
    );
  });

  test('refuses chains out of order or with a missing link', () => {
    rejects(
      () => verifyChain([nvChain[0]!, nvChain[2]!, nvChain[3]!, nvChain[4]!], nvRoot, NVIDIA_AT, none),
      'ATTEST_CHAIN_BROKEN',
    );
    rejects(
      () => verifyChain([nvChain[1]!, nvChain[0]!, ...nvChain.slice(2)], nvRoot, NVIDIA_AT, none),
      'ATTEST_CHAIN_BROKEN',
    );
    assert.throws(
      () =>
        verifyChain([nvChain[0]!, nvChain[1]!, nvChain[1]!, ...nvChain.slice(2)], nvRoot, NVIDIA_AT, none),
      AttestationError,
    );
  });

  test('checks validity at block time, never the wall clock, at second resolution', () => {
    const notAfter = akEcc.notAfterMs;
    assert.equal(notAfter, ms('2036-01-01T00:00:00Z'));
    verifyChain([akEcc, intEcc], [tpmRoot], notAfter + 999n, none);
    rejects(
      () => verifyChain([akEcc, intEcc], [tpmRoot], notAfter + 1000n, none),
      'ATTEST_CERT_EXPIRED',
      /expired/,
    );
    verifyChain([akEcc, intEcc], [tpmRoot], akEcc.notBeforeMs, none);
    rejects(
      () => verifyChain([akEcc, intEcc], [tpmRoot], akEcc.notBeforeMs - 1n, none),
      'ATTEST_CERT_EXPIRED',
      /not valid yet/,
    );
    // NVIDIA: after 9999-12-31T23:59:59Z, before the leaf's notBefore, and between the leaf's
    // notBefore and the provisioner ICA's (2022-03-01).
    rejects(
      () => verifyChain(nvChain, nvRoot, ms('9999-12-31T23:59:59Z') + 1000n, none),
      'ATTEST_CERT_EXPIRED',
      /leaf/,
    );
    rejects(
      () => verifyChain(nvChain, nvRoot, ms('2020-10-16T23:59:59Z'), none),
      'ATTEST_CERT_EXPIRED',
      /leaf/,
    );
    rejects(
      () => verifyChain(nvChain, nvRoot, ms('2021-06-01T00:00:00Z'), none),
      'ATTEST_CERT_EXPIRED',
      /not valid yet/,
    );
  });

  test('refuses revoked certificates (issuer and serial) at every level, in any hex spelling', () => {
    for (const cert of nvChain) {
      const id = certificateRevocationId(cert);
      const [issuer] = id.split(':');
      for (const spelling of [id, id.toUpperCase(), `${issuer}:00${cert.serialHex}`]) {
        rejects(() => verifyChain(nvChain, nvRoot, NVIDIA_AT, new Set([spelling])), 'ATTEST_CERT_REVOKED');
      }
    }
    rejects(
      () => verifyChain([akEcc, intEcc], [tpmRoot], TPM_AT, new Set([certificateRevocationId(tpmRoot)])),
      'ATTEST_CERT_REVOKED',
      /root/,
    );
    // Bare serials (the form before issuers scoped them) match nothing.
    verifyChain([akEcc, intEcc], [tpmRoot], TPM_AT, new Set(['1001', '1002', '2001']));
  });

  test("attack: revoking one CA's certificate does not revoke another CA's with the same serial", () => {
    const root = issueCa('Serial Root');
    const roots = [parseCertificate(root.der)];
    const caA = issueCa('Serial CA A', root);
    const caB = issueCa('Serial CA B', root);
    const leaf = (ca: Issued) =>
      issue({
        subject: name('Serial Leaf'),
        issuer: ca,
        serial: 0x77n,
        keyAlg: 'P-256',
        extensions: ({ ski }) => [ext.ku(0), ext.ski(ski), ext.aki(ca.ski)],
      });
    const chainA = [parseCertificate(leaf(caA).der), parseCertificate(caA.der)];
    const chainB = [parseCertificate(leaf(caB).der), parseCertificate(caB.der)];
    assert.equal(chainA[0]!.serialHex, chainB[0]!.serialHex);
    const revokedA = new Set([certificateRevocationId(chainA[0]!)]);
    rejects(() => verifyChain(chainA, roots, TPM_AT, revokedA), 'ATTEST_CERT_REVOKED', /leaf/);
    verifyChain(chainB, roots, TPM_AT, revokedA);
    assert.equal(normalizeRevocationId(chainA[0]!.serialHex), null);
  });

  describe('with generated certificates', () => {
    const root = issueCa('Gen Root');
    const roots = [parseCertificate(root.der)];
    const leafUnder = (issuer: typeof root, extra: Partial<Parameters<typeof issue>[0]> = {}) =>
      issue({
        subject: name('Gen Leaf'),
        issuer,
        keyAlg: 'P-256',
        extensions: ({ ski }) => [ext.ku(0), ext.ski(ski), ext.aki(issuer.ski)],
        ...extra,
      });
    const p = (...c: { der: Uint8Array }[]): Certificate[] => c.map((x) => parseCertificate(x.der));

    test('accepts a well-formed chain', () => {
      const ica = issueCa('Gen ICA', root);
      verifyChain(p(leafUnder(ica), ica), roots, TPM_AT, none);
    });

    test('accepts high-S and low-S ECDSA certificate signatures alike', () => {
      for (const sMode of ['high', 'low'] as const) {
        const ica = issueCa(`Gen ICA ${sMode}`, root, { sMode });
        const leaf = leafUnder(ica, { sMode });
        verifyChain(p(leaf, ica), roots, TPM_AT, none);
      }
    });

    test('refuses an issuer that is not a CA', () => {
      const notCa = issue({
        subject: name('Not a CA'),
        issuer: root,
        extensions: ({ ski }) => [ext.ski(ski), ext.aki(root.ski), ext.ku(0, 5)],
      });
      rejects(
        () => verifyChain(p(leafUnder(notCa), notCa), roots, TPM_AT, none),
        'ATTEST_NOT_CA',
        /basicConstraints/,
      );
      const noCertSign = issue({
        subject: name('CA without keyCertSign'),
        issuer: root,
        extensions: ({ ski }) => [ext.ca(), ext.ku(0, 6), ext.ski(ski), ext.aki(root.ski)],
      });
      rejects(
        () => verifyChain(p(leafUnder(noCertSign), noCertSign), roots, TPM_AT, none),
        'ATTEST_NOT_CA',
        /keyUsage/,
      );
    });

    test('enforces pathLenConstraint', () => {
      const strictRoot = issue({
        subject: name('pathLen 0 root'),
        extensions: ({ ski }) => [ext.ca(0), ext.ku(5), ext.ski(ski)],
      });
      const ica = issueCa('ICA under pathLen 0', strictRoot);
      const r = [parseCertificate(strictRoot.der)];
      rejects(() => verifyChain(p(leafUnder(ica), ica), r, TPM_AT, none), 'ATTEST_NOT_CA', /allows 0/);
      verifyChain(p(leafUnder(strictRoot)), r, TPM_AT, none);
    });

    test('refuses unknown critical extensions but ignores unknown non-critical ones', () => {
      const mk = (critical: boolean) =>
        leafUnder(root, {
          extensions: ({ ski }) => [
            ext.ski(ski),
            ext.aki(root.ski),
            ext.raw('1.2.3.4.5', critical, der.nul()),
          ],
        });
      rejects(
        () => verifyChain(p(mk(true)), roots, TPM_AT, none),
        'ATTEST_UNKNOWN_CRITICAL_EXTENSION',
        /1\.2\.3\.4\.5/,
      );
      verifyChain(p(mk(false)), roots, TPM_AT, none);
    });

    test('requires key identifiers on every link', () => {
      const noAki = leafUnder(root, { extensions: ({ ski }) => [ext.ski(ski)] });
      rejects(() => verifyChain(p(noAki), roots, TPM_AT, none), 'ATTEST_UNTRUSTED_ROOT');
      const ica = issueCa('ICA', root);
      const noAki2 = leafUnder(ica, { extensions: ({ ski }) => [ext.ski(ski)] });
      rejects(
        () => verifyChain(p(noAki2, ica), roots, TPM_AT, none),
        'ATTEST_CHAIN_BROKEN',
        /key identifiers/,
      );
    });

    test('verifies RSA PKCS#1 v1.5 and PSS links issued by an RSA CA', () => {
      const rsaCa = issueCa('RSA ICA', root, { keyAlg: 'rsa2048' });
      for (const sigAlg of ['rsa-sha256', 'rsa-pss-sha256'] as const) {
        const leaf = leafUnder(rsaCa, { sigAlg });
        verifyChain(p(leaf, rsaCa), roots, TPM_AT, none);
        const bad = Uint8Array.from(leaf.der);
        bad[bad.length - 5]! ^= 1;
        rejects(() => verifyChain(p({ der: bad }, rsaCa), roots, TPM_AT, none), 'ATTEST_BAD_SIGNATURE');
      }
    });

    test('refuses any single flipped bit in a certificate signature', () => {
      const ica = issueCa('ICA flip', root);
      const leaf = leafUnder(ica);
      const sigStart = leaf.der.length - 70; // inside the ~70-byte DER ECDSA-P384 BIT STRING
      for (let i = sigStart; i < leaf.der.length; i++) {
        for (const bit of [0x01, 0x80]) {
          const bad = Uint8Array.from(leaf.der);
          bad[i]! ^= bit;
          assert.throws(
            () => verifyChain([parseCertificate(bad), parseCertificate(ica.der)], roots, TPM_AT, none),
            AttestationError,
          );
        }
      }
    });
  });
});
