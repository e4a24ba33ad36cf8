import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, verify, X509Certificate } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DecodeError, decode, encode, parseCertificate } from '@unc/core';
import {
  createRevocationList,
  createVendorCa,
  issueAkCertificate,
  keyIdentifier,
  loadVendorCa,
  OID,
  parseAttest,
  parseSignature,
  provisionChip,
  publicKeyToSpki,
  revocationListCodec,
  revocationListFromPem,
  revokeSerials,
  Swtpm,
  signatureToDer,
  signedRevocationListCodec,
  Tpm,
  unmarshalPublic,
  unwrapTpm2bPublic,
  VENDOR_CA_FILES,
  verifyRevocationList,
  writeVendorCa,
} from '../src/index.js';
import { NEED_OPENSSL, NEED_SWTPM, run, tempDir } from './helpers.js';

const NOT_BEFORE = new Date('2025-01-01T00:00:00Z');
const NOT_AFTER = new Date('2060-01-01T00:00:00Z');
const CHIP_NOT_BEFORE = new Date('2025-06-01T00:00:00Z');
const CHIP_NOT_AFTER = new Date('2045-06-01T00:00:00Z');

function x509(der: Uint8Array): X509Certificate {
  return new X509Certificate(Buffer.from(der));
}

describe('vendor CA', () => {
  for (const curve of ['P-256', 'P-384'] as const) {
    test(`${curve}: root and intermediate chain by key identifiers and signatures`, () => {
      const ca = createVendorCa({
        vendorId: 'acme',
        organization: 'Acme Chips',
        curve,
        notBefore: NOT_BEFORE,
        notAfter: NOT_AFTER,
      });
      const root = x509(ca.root.certificate);
      const inter = x509(ca.intermediate.certificate);
      assert.equal(root.ca, true);
      assert.equal(inter.ca, true);
      assert.equal(root.verify(root.publicKey), true);
      assert.equal(inter.verify(root.publicKey), true);
      assert.equal(inter.checkIssued(root), true);
      assert.equal(root.subject, 'O=Acme Chips\nCN=Acme Chips Root CA');
      assert.equal(new Date(root.validFrom).getTime(), NOT_BEFORE.getTime());
      assert.equal(new Date(root.validTo).getTime(), NOT_AFTER.getTime());

      // Read back with core's strict parser, the one the chain verifies evidence with.
      const rootInfo = parseCertificate(ca.root.certificate);
      const interInfo = parseCertificate(ca.intermediate.certificate);
      const extension = (info: typeof rootInfo, oid: string) => info.extensions.find((e) => e.oid === oid)!;
      assert.deepEqual(rootInfo.subjectKeyIdentifier, keyIdentifier(rootInfo.publicKey.der));
      assert.deepEqual(
        interInfo.authorityKeyIdentifier,
        rootInfo.subjectKeyIdentifier,
        'intermediate AKI = root SKI',
      );
      assert.equal(extension(interInfo, OID.basicConstraints).critical, true);
      assert.equal(extension(interInfo, OID.keyUsage).critical, true);
      assert.deepEqual(interInfo.issuer.der, rootInfo.subject.der);
    });
  }

  test("key identifiers are read with core's strict SPKI parser, for EC and RSA keys alike", () => {
    const sha1 = (b: Uint8Array) => new Uint8Array(createHash('sha1').update(b).digest());
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const rsaSpki = new Uint8Array(rsa.export({ type: 'spki', format: 'der' }));
    // The subjectPublicKey BIT STRING of an RSA SPKI holds the PKCS#1 RSAPublicKey.
    assert.deepEqual(
      keyIdentifier(rsaSpki),
      sha1(new Uint8Array(rsa.export({ type: 'pkcs1', format: 'der' }))),
    );
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    const ecSpki = new Uint8Array(ec.export({ type: 'spki', format: 'der' }));
    assert.deepEqual(keyIdentifier(ecSpki), sha1(ecSpki.subarray(ecSpki.length - 65)));
    // What the lenient reader let through, the strict one refuses.
    assert.throws(() => keyIdentifier(Uint8Array.of(...ecSpki, 0)), /trailing/);
  });

  test('written as PEM, private keys owner-only, and loaded back', async () => {
    const dir = await tempDir('unc-vendor-');
    try {
      const ca = createVendorCa({ vendorId: 'acme', notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
      await writeVendorCa(ca, dir.path);
      const keyMode = (await stat(join(dir.path, VENDOR_CA_FILES.rootKey))).mode & 0o777;
      assert.equal(keyMode, 0o600);
      assert.match(
        await readFile(join(dir.path, VENDOR_CA_FILES.rootCert), 'utf8'),
        /^-----BEGIN CERTIFICATE-----\n/,
      );
      const loaded = await loadVendorCa(dir.path);
      assert.equal(loaded.vendorId, 'acme');
      assert.deepEqual(loaded.root.certificate, ca.root.certificate);
      assert.deepEqual(loaded.intermediate.keyId, ca.intermediate.keyId);
      // The loaded key still issues certificates that chain.
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      const cert = issueAkCertificate(loaded, spki, {
        model: 'm1',
        notBefore: CHIP_NOT_BEFORE,
        notAfter: CHIP_NOT_AFTER,
      });
      assert.equal(x509(cert.certificate).verify(x509(ca.intermediate.certificate).publicKey), true);
    } finally {
      await dir.remove();
    }
  });

  test('attack: a link planted where a CA private key goes is replaced, never written through', async () => {
    const dir = await tempDir('unc-vendor-');
    try {
      // A file its planter can read, which the CA's owner can write (mode 0666 on a shared host):
      // the intermediate key went into it, since only root.key.pem is checked before writing.
      const stolen = join(dir.path, 'stolen.pem');
      await writeFile(stolen, '');
      const out = join(dir.path, 'ca');
      await mkdir(out);
      await symlink(stolen, join(out, VENDOR_CA_FILES.intermediateKey));
      await symlink(join(dir.path, 'dangling.pem'), join(out, VENDOR_CA_FILES.rootKey));
      const ca = createVendorCa({ vendorId: 'acme', notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
      await writeVendorCa(ca, out);
      assert.equal(await readFile(stolen, 'utf8'), '', 'the intermediate key was written through the link');
      await assert.rejects(stat(join(dir.path, 'dangling.pem')), /ENOENT/);
      for (const file of [VENDOR_CA_FILES.rootKey, VENDOR_CA_FILES.intermediateKey]) {
        const st = await lstat(join(out, file));
        assert.ok(st.isFile(), `${file} is not a file of its own`);
        assert.equal(st.mode & 0o777, 0o600);
      }
      assert.deepEqual(
        (await readdir(out)).filter((f) => f.endsWith('.tmp')),
        [],
      );
      const loaded = await loadVendorCa(out);
      assert.deepEqual(loaded.intermediate.keyId, ca.intermediate.keyId);
    } finally {
      await dir.remove();
    }
  });

  test('attack: a link planted at a certificate or vendor.json is replaced, never written through', async () => {
    const dir = await tempDir('unc-vendor-');
    try {
      const victim = join(dir.path, 'victim.txt');
      await writeFile(victim, 'the user own file\n');
      const out = join(dir.path, 'ca');
      await mkdir(out);
      await symlink(victim, join(out, VENDOR_CA_FILES.rootCert));
      await symlink(victim, join(out, VENDOR_CA_FILES.vendor));
      await writeVendorCa(
        createVendorCa({ vendorId: 'acme', notBefore: NOT_BEFORE, notAfter: NOT_AFTER }),
        out,
      );
      assert.equal(await readFile(victim, 'utf8'), 'the user own file\n');
      for (const file of [VENDOR_CA_FILES.rootCert, VENDOR_CA_FILES.vendor])
        assert.ok((await lstat(join(out, file))).isFile(), `${file} is not a file of its own`);
      assert.equal((await loadVendorCa(out)).vendorId, 'acme');
    } finally {
      await dir.remove();
    }
  });

  test('a key that cannot be put in place fails the write and leaves no temporary file', async () => {
    const dir = await tempDir('unc-vendor-');
    try {
      const out = join(dir.path, 'ca');
      // A directory with something in it where the intermediate key goes: the rename fails.
      await mkdir(join(out, VENDOR_CA_FILES.intermediateKey, 'inside'), { recursive: true });
      const ca = createVendorCa({ vendorId: 'acme', notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
      await assert.rejects(writeVendorCa(ca, out), /EISDIR|ENOTEMPTY|EEXIST|EPERM/);
      assert.deepEqual(
        (await readdir(out)).filter((f) => f.endsWith('.tmp')),
        [],
        'a copy of the intermediate key was left at its temporary name',
      );
    } finally {
      await dir.remove();
    }
  });

  test('openssl reads the certificates as standard X.509', { skip: NEED_OPENSSL }, async () => {
    const dir = await tempDir('unc-vendor-');
    try {
      const ca = createVendorCa({
        vendorId: 'acme',
        country: 'US',
        curve: 'P-384',
        notBefore: NOT_BEFORE,
        notAfter: NOT_AFTER,
      });
      await writeVendorCa(ca, dir.path);
      const text = await run('openssl', [
        'x509',
        '-in',
        join(dir.path, VENDOR_CA_FILES.rootCert),
        '-noout',
        '-text',
      ]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /Version: 3 \(0x2\)/);
      assert.match(text.stdout, /Signature Algorithm: ecdsa-with-SHA384/);
      assert.match(text.stdout, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
      assert.match(text.stdout, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
      assert.match(text.stdout, /X509v3 Subject Key Identifier/);
      assert.match(text.stdout, /X509v3 Authority Key Identifier/);
      assert.match(text.stdout, /Not Before: Jan {2}1 00:00:00 2025 GMT/);
      assert.match(text.stdout, /Not After : Jan {2}1 00:00:00 2060 GMT/);
      const verified = await run('openssl', [
        'verify',
        '-x509_strict',
        '-CAfile',
        join(dir.path, VENDOR_CA_FILES.rootCert),
        join(dir.path, VENDOR_CA_FILES.intermediateCert),
      ]);
      assert.equal(verified.code, 0, verified.stderr + verified.stdout);
    } finally {
      await dir.remove();
    }
  });
});

describe('provisioning a chip on a real swtpm', { skip: NEED_SWTPM }, () => {
  let swtpm: Swtpm;
  let tpm: Tpm;
  let dir: { path: string; remove(): Promise<void> };

  before(async () => {
    dir = await tempDir('unc-provision-');
    swtpm = await Swtpm.start();
    tpm = new Tpm(swtpm.transport());
    await tpm.startup();
  });

  after(async () => {
    await tpm?.close();
    await swtpm?.dispose();
    await dir?.remove();
  });

  test('the AK certificate chains to the vendor root and carries the AK and the model', async () => {
    const caDir = join(dir.path, 'ca');
    const chipDir = join(dir.path, 'chip');
    const ca = createVendorCa({
      vendorId: 'acme',
      organization: 'Acme Chips',
      notBefore: NOT_BEFORE,
      notAfter: NOT_AFTER,
    });
    await writeVendorCa(ca, caDir);
    const chip = await provisionChip(tpm, ca, {
      model: 'acme-x1',
      serial: 0x1234_5678_9abcn,
      notBefore: CHIP_NOT_BEFORE,
      notAfter: CHIP_NOT_AFTER,
      outDir: chipDir,
    });
    assert.equal(chip.serial, 0x1234_5678_9abcn);
    assert.deepEqual(await tpm.transientHandles(), []);

    const cert = x509(chip.akCertDer);
    assert.equal(cert.serialNumber, '123456789ABC');
    assert.equal(cert.verify(x509(ca.intermediate.certificate).publicKey), true);
    assert.deepEqual(new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' })), chip.akSpki);
    // akPublic (TPM2B_PUBLIC) and akSpki are the same key.
    assert.deepEqual(publicKeyToSpki(unmarshalPublic(unwrapTpm2bPublic(chip.akPublic))), chip.akSpki);
    assert.equal(chip.akHandleInfo.hierarchy, 'endorsement');
    assert.deepEqual(new Uint8Array(await readFile(join(chipDir, 'ak.pub'))), chip.akPublic);

    // A quote from the chip verifies against the certified key, with nothing but the certificate.
    const message = new Uint8Array(32).fill(0x42);
    const q = await tpm.withAk({}, async (ak) => tpm.quote(ak.handle, message));
    assert.equal(
      verify('sha256', q.attest, cert.publicKey, signatureToDer(parseSignature(q.signature))),
      true,
    );
    const attest = parseAttest(q.attest);
    assert.deepEqual(attest.extraData, message);
    assert.equal(Buffer.from(attest.qualifiedSigner).toString('hex'), chip.akHandleInfo.qualifiedName);

    if (NEED_OPENSSL) return;
    const text = await run('openssl', ['x509', '-in', join(chipDir, 'ak.cert.pem'), '-noout', '-text']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /Serial Number: 20015998343868 \(0x123456789abc\)/);
    assert.match(text.stdout, /CA:FALSE/);
    assert.match(text.stdout, /Key Usage: critical\s+Digital Signature/);
    assert.match(text.stdout, /Extended Key Usage:\s+2\.23\.133\.8\.3/);
    assert.match(
      text.stdout,
      /DirName:\/2\.23\.133\.2\.1=id:49424D00\/2\.23\.133\.2\.2=acme-x1\/2\.23\.133\.2\.3=id:[0-9A-F]{8}/,
    );
    const root = join(caDir, VENDOR_CA_FILES.rootCert);
    const inter = join(caDir, VENDOR_CA_FILES.intermediateCert);
    const akCert = join(chipDir, 'ak.cert.pem');
    const ok = await run('openssl', ['verify', '-x509_strict', '-CAfile', root, '-untrusted', inter, akCert]);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    // Validity is the window given, checked at a chosen time rather than the wall clock.
    const early = await run('openssl', [
      'verify',
      '-attime',
      String(Date.UTC(2025, 2, 1) / 1000),
      '-CAfile',
      root,
      '-untrusted',
      inter,
      akCert,
    ]);
    assert.notEqual(early.code, 0, 'not yet valid before notBefore');
    assert.match(early.stdout + early.stderr, /not yet valid/);
    const withoutIntermediate = await run('openssl', ['verify', '-CAfile', root, akCert]);
    assert.notEqual(withoutIntermediate.code, 0);
    const other = createVendorCa({ vendorId: 'evil', notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
    await writeVendorCa(other, join(dir.path, 'other'));
    const foreign = await run('openssl', [
      'verify',
      '-CAfile',
      join(dir.path, 'other', VENDOR_CA_FILES.rootCert),
      '-untrusted',
      inter,
      akCert,
    ]);
    assert.notEqual(foreign.code, 0, 'another vendor root does not vouch for this chip');
    const chain = await run('openssl', [
      'verify',
      '-CAfile',
      root,
      '-untrusted',
      join(chipDir, 'chain.pem'),
      akCert,
    ]);
    assert.equal(chain.code, 0, chain.stderr + chain.stdout);
  });
});

describe('revocation list', () => {
  const ca = createVendorCa({ vendorId: 'acme', notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
  const issuedAt = new Date('2025-07-01T00:00:00Z');

  test('signed by the root, canonical, and checked against the root', () => {
    const encoded = createRevocationList(ca, {
      sequence: 3n,
      issuedAt,
      serials: [0x1234n, 5n, 0xff_ffn, 5n],
    });
    const list = verifyRevocationList(encoded, ca.root);
    assert.equal(list.vendorId, 'acme');
    assert.equal(list.sequence, 3n);
    assert.equal(list.issuedAt, BigInt(issuedAt.getTime() / 1000));
    assert.deepEqual(list.serialNumbers, [5n, 0x1234n, 0xffffn]);
    assert.deepEqual(list.issuerKeyId, ca.root.keyId);
    // Same input in another order: byte-identical list body (signatures are randomised).
    const again = decode(
      signedRevocationListCodec,
      createRevocationList(ca, { sequence: 3n, issuedAt, serials: [0xffffn, 0x1234n, 5n] }),
    );
    assert.deepEqual(
      encode(revocationListCodec, again.list),
      encode(revocationListCodec, decode(signedRevocationListCodec, encoded).list),
    );
    // Verifiable from the root public key alone, too.
    const rootKey = createPublicKey({
      key: Buffer.from(parseCertificate(ca.root.certificate).publicKey.der),
      format: 'der',
      type: 'spki',
    });
    assert.equal(verifyRevocationList(encoded, { publicKey: rootKey }).serialNumbers.length, 3);
  });

  test('tampering, a foreign root and non-canonical lists are rejected', () => {
    const encoded = createRevocationList(ca, { sequence: 1n, issuedAt, serials: [7n, 9n] });
    const signed = decode(signedRevocationListCodec, encoded);
    const forged = encode(signedRevocationListCodec, {
      ...signed,
      list: { ...signed.list, serials: [Uint8Array.of(7)] },
    });
    assert.throws(() => verifyRevocationList(forged, ca.root), /signature does not verify/);
    const other = createVendorCa({ vendorId: 'acme', notBefore: NOT_BEFORE, notAfter: NOT_AFTER });
    assert.throws(() => verifyRevocationList(encoded, other.root), /different root/);
    const unsorted = encode(signedRevocationListCodec, {
      ...signed,
      list: { ...signed.list, serials: [Uint8Array.of(9), Uint8Array.of(7)] },
    });
    assert.throws(() => verifyRevocationList(unsorted, ca.root), DecodeError);
    const padded = encode(signedRevocationListCodec, {
      ...signed,
      list: { ...signed.list, serials: [Uint8Array.of(0, 7)] },
    });
    assert.throws(() => verifyRevocationList(padded, ca.root), DecodeError);
    assert.throws(() => verifyRevocationList(encoded.subarray(0, encoded.length - 1), ca.root), DecodeError);
  });

  test('revokeSerials merges into the stored list with the next sequence number', async () => {
    const dir = await tempDir('unc-revoke-');
    try {
      const path = join(dir.path, 'revocations.pem');
      await revokeSerials(ca, path, [10n], issuedAt);
      await revokeSerials(ca, path, [3n, 10n], new Date('2025-07-02T00:00:00Z'));
      const list = verifyRevocationList(revocationListFromPem(await readFile(path, 'utf8')), ca.root);
      assert.equal(list.sequence, 2n);
      assert.deepEqual(list.serialNumbers, [3n, 10n]);
    } finally {
      await dir.remove();
    }
  });
});
