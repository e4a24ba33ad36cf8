import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import {
  akTemplate,
  DeviceTransport,
  decodeResponseCode,
  marshalSignature,
  objectName,
  parseAttest,
  parseSignature,
  primaryQualifiedName,
  publicKeyToSpki,
  Swtpm,
  signatureToDer,
  storageKeyTemplate,
  TPM_ALG,
  TPM_RH,
  TPM_ST,
  Tpm,
  TpmError,
  TpmProtocolError,
  verifyAttestSignature,
} from '../src/index.js';
import { NEED_SWTPM } from './helpers.js';

describe('response codes', () => {
  test('format-one codes name the parameter, handle or session at fault', () => {
    const sym = decodeResponseCode(0x2d6);
    assert.equal(sym.name, 'TPM_RC_SYMMETRIC');
    assert.deepEqual(sym.subject, { kind: 'parameter', index: 2 });
    assert.deepEqual(decodeResponseCode(0x18b).subject, { kind: 'handle', index: 1 });
    assert.equal(decodeResponseCode(0x18b).name, 'TPM_RC_HANDLE');
    assert.deepEqual(decodeResponseCode(0x9a2), {
      base: 0x0a2,
      name: 'TPM_RC_BAD_AUTH',
      description: 'authorization failure without DA implications',
      warning: false,
      subject: { kind: 'session', index: 1 },
    });
  });

  test('format-zero codes and warnings', () => {
    assert.equal(decodeResponseCode(0x100).name, 'TPM_RC_INITIALIZE');
    const mem = decodeResponseCode(0x902);
    assert.equal(mem.name, 'TPM_RC_OBJECT_MEMORY');
    assert.equal(mem.warning, true);
    const err = new TpmError(0x158, 0x902);
    assert.match(err.message, /^TPM2_Quote failed: TPM_RC_OBJECT_MEMORY \(rc 0x00000902\)/);
  });
});

describe('TPM driver against a real swtpm', { skip: NEED_SWTPM }, () => {
  let swtpm: Swtpm;
  let tpm: Tpm;
  const message = createHash('sha256').update('UNC/test message').digest();

  before(async () => {
    swtpm = await Swtpm.start();
    tpm = new Tpm(swtpm.transport());
    assert.equal(await tpm.startup('clear'), true);
  });

  after(async () => {
    await tpm?.close();
    await swtpm?.dispose();
  });

  test('startup twice reports the TPM as already started', async () => {
    assert.equal(await tpm.startup('clear'), false);
  });

  test('GetRandom returns the requested number of bytes, fresh each time', async () => {
    assert.equal((await tpm.getRandom(0)).length, 0);
    const a = await tpm.getRandom(100);
    const b = await tpm.getRandom(100);
    assert.equal(a.length, 100);
    assert.notDeepEqual(a, b);
  });

  test('identifies itself as a TPM 2.0', async () => {
    const info = await tpm.info();
    assert.equal(info.family, '2.0');
    assert.equal(info.manufacturer, 'IBM');
  });

  test('the AK is a deterministic primary key whose Name and Qualified Name we can compute', async () => {
    const first = await tpm.withAk({}, async (ak) => {
      const pub = await tpm.readPublic(ak.handle);
      assert.deepEqual(pub.publicArea, ak.publicArea);
      assert.deepEqual(pub.name, ak.name);
      assert.deepEqual(objectName(ak.publicArea), ak.name);
      assert.deepEqual(primaryQualifiedName(TPM_RH.ENDORSEMENT, ak.publicArea), pub.qualifiedName);
      assert.equal(ak.public.type, 'ecc');
      // TPM2B_PUBLIC is the public area with its u16 size in front.
      assert.equal((ak.tpm2bPublic[0]! << 8) | ak.tpm2bPublic[1]!, ak.publicArea.length);
      const key = createPublicKey({
        key: Buffer.from(publicKeyToSpki(ak.public)),
        format: 'der',
        type: 'spki',
      });
      assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      return ak.publicArea;
    });
    const second = await tpm.withAk({}, async (ak) => ak.publicArea);
    assert.deepEqual(second, first);
    const owner = await tpm.withAk({ hierarchy: 'owner' }, async (ak) => ak.publicArea);
    assert.notDeepEqual(owner, first);
  });

  test('quote: the signature verifies over SHA-256(attest) and extraData is the message', async () => {
    await tpm.withAk({}, async (ak) => {
      const { attest, signature } = await tpm.quote(ak.handle, message);
      const spki = createPublicKey({
        key: Buffer.from(publicKeyToSpki(ak.public)),
        format: 'der',
        type: 'spki',
      });
      const sig = parseSignature(signature);
      assert.equal(sig.sigAlg, 'ecdsa');
      assert.equal(sig.hashAlg, TPM_ALG.SHA256);
      assert.deepEqual(marshalSignature(sig), signature);
      // Plain node:crypto, no driver helper: ECDSA-SHA256 over the TPMS_ATTEST bytes.
      assert.equal(verify('sha256', attest, spki, signatureToDer(sig)), true);
      assert.equal(verifyAttestSignature(ak.public, attest, signature), true);
      const tampered = attest.slice();
      tampered[tampered.length - 1]! ^= 1;
      assert.equal(verifyAttestSignature(ak.public, tampered, signature), false);

      const parsed = parseAttest(attest);
      assert.equal(parsed.type, TPM_ST.ATTEST_QUOTE);
      assert.deepEqual(parsed.extraData, new Uint8Array(message));
      const { qualifiedName } = await tpm.readPublic(ak.handle);
      assert.deepEqual(parsed.qualifiedSigner, qualifiedName);
      assert.equal(parsed.attested.type, 'quote');
      if (parsed.attested.type !== 'quote') return;
      assert.deepEqual(parsed.attested.pcrSelect, [{ hashAlg: TPM_ALG.SHA256, pcrs: [0] }]);
      // pcrDigest = H(concatenation of the selected PCR values).
      const pcrs = await tpm.pcrRead([{ hashAlg: TPM_ALG.SHA256, pcrs: [0] }]);
      assert.equal(pcrs.digests.length, 1);
      const expected = createHash('sha256').update(pcrs.digests[0]!).digest();
      assert.deepEqual(parsed.attested.pcrDigest, new Uint8Array(expected));
    });
  });

  test('GetTime: signed time attestation bound to the message', async () => {
    await tpm.withAk({}, async (ak) => {
      const q = parseAttest((await tpm.quote(ak.handle, message)).attest);
      const { attest, signature } = await tpm.getTime(ak.handle, message);
      assert.equal(verifyAttestSignature(ak.public, attest, signature), true);
      const t = parseAttest(attest);
      assert.equal(t.type, TPM_ST.ATTEST_TIME);
      assert.deepEqual(t.extraData, new Uint8Array(message));
      assert.equal(t.attested.type, 'time');
      if (t.attested.type !== 'time') return;
      assert.ok(t.clockInfo.clock >= q.clockInfo.clock, 'the clock never goes backwards');
      assert.equal(t.clockInfo.resetCount, q.clockInfo.resetCount);
      assert.deepEqual(t.attested.clockInfo, t.clockInfo);
    });
  });

  test('RSA-2048 and P-384 AKs quote too', async () => {
    for (const algorithm of ['rsa-2048', 'ecc-p384'] as const) {
      await tpm.withAk({ algorithm }, async (ak) => {
        const { attest, signature } = await tpm.quote(ak.handle, message);
        const sig = parseSignature(signature);
        assert.equal(sig.sigAlg, algorithm === 'rsa-2048' ? 'rsassa' : 'ecdsa');
        const spki = createPublicKey({
          key: Buffer.from(publicKeyToSpki(ak.public)),
          format: 'der',
          type: 'spki',
        });
        const hash = algorithm === 'rsa-2048' ? 'sha256' : 'sha384';
        const raw = sig.sigAlg === 'ecdsa' ? signatureToDer(sig) : sig.sig;
        assert.equal(verify(hash, attest, spki, raw), true, algorithm);
        assert.deepEqual(parseAttest(attest).extraData, new Uint8Array(message));
      });
    }
  });

  test('Create + Load: a child signing key under a storage parent', async () => {
    await tpm.withObject(
      tpm.createPrimary({ template: storageKeyTemplate(), hierarchy: 'owner' }),
      async (srk) => {
        const { privateBlob, publicArea } = await tpm.create(srk.handle, akTemplate('ecc-p256'));
        await tpm.withObject(tpm.load(srk.handle, privateBlob, publicArea), async (child) => {
          assert.deepEqual(child.name, objectName(publicArea));
          const { attest, signature } = await tpm.quote(child.handle, message);
          assert.equal(verifyAttestSignature(child.public, attest, signature), true);
          assert.equal((await tpm.transientHandles()).length, 2);
        });
      },
    );
    assert.deepEqual(await tpm.transientHandles(), []);
  });

  test('every transient handle is flushed, even when the work fails', async () => {
    await tpm.withAk({}, async (ak) => {
      await tpm.quote(ak.handle, message);
      assert.deepEqual(await tpm.transientHandles(), [ak.handle]);
    });
    assert.deepEqual(await tpm.transientHandles(), []);
    await assert.rejects(
      tpm.withAk({}, async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.deepEqual(await tpm.transientHandles(), []);
  });

  test('TPM errors carry the response code, its name and the command', async () => {
    await assert.rejects(tpm.flushContext(0x80ffffff), (err: unknown) => {
      assert.ok(err instanceof TpmError);
      assert.equal(err.commandCode, 0x165);
      assert.match(err.message, /TPM2_FlushContext failed: TPM_RC_\w+ \(rc 0x[0-9a-f]{8}/);
      return true;
    });
    await assert.rejects(tpm.nvRead(0x01500000), (err: unknown) => {
      assert.ok(err instanceof TpmError);
      assert.equal(err.rcName, 'TPM_RC_HANDLE');
      return true;
    });
    // A storage key must not sign quotes: the TPM says which handle is wrong.
    await tpm.withObject(
      tpm.createPrimary({ template: storageKeyTemplate(), hierarchy: 'owner' }),
      async (srk) => {
        await assert.rejects(tpm.quote(srk.handle, message), (err: unknown) => {
          assert.ok(err instanceof TpmError);
          assert.deepEqual(err.decoded.subject, { kind: 'handle', index: 1 });
          return true;
        });
      },
    );
    await assert.rejects(tpm.quote(0x80000000, new Uint8Array(65)), RangeError);
    assert.deepEqual(await tpm.transientHandles(), []);
  });

  test('concurrent callers are serialised on the one connection', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => tpm.getRandom(16)));
    assert.equal(new Set(results.map((r) => Buffer.from(r).toString('hex'))).size, 8);
  });
});

describe('character device transport', () => {
  test('a missing device is a clear protocol error', async () => {
    const tpm = new Tpm(new DeviceTransport({ path: '/nonexistent/tpmrm0' }));
    await assert.rejects(tpm.getRandom(8), (err: unknown) => {
      assert.ok(err instanceof TpmProtocolError);
      assert.match(err.message, /\/nonexistent\/tpmrm0/);
      return true;
    });
    await tpm.close();
  });

  const device = process.env.UNC_TPM_DEVICE ?? '/dev/tpmrm0';
  test(`a real TPM at ${device}`, { skip: canOpen(device) ? false : `no accessible ${device}` }, async () => {
    const tpm = new Tpm(new DeviceTransport({ path: device }));
    try {
      assert.equal((await tpm.getRandom(32)).length, 32);
      const message = new Uint8Array(32).fill(0x5a);
      await tpm.withAk({}, async (ak) => {
        const { attest, signature } = await tpm.quote(ak.handle, message);
        assert.equal(verifyAttestSignature(ak.public, attest, signature), true);
        assert.deepEqual(parseAttest(attest).extraData, message);
      });
    } finally {
      await tpm.close();
    }
  });
});

function canOpen(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
