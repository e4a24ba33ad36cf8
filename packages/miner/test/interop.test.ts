/**
 * Our bytes against tpm2-tools, the reference TSS's command-line tools: what our driver writes
 * must be what tpm2_quote / tpm2_readpublic write, and what they write our parsers must read.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  marshalSignature,
  parseAttest,
  parseSignature,
  publicKeyToSpki,
  Swtpm,
  TPM_ST,
  Tpm,
  toPem,
  unmarshalPublic,
  unwrapTpm2bPublic,
  verifyAttestSignature,
} from '../src/index.js';
import { hex, NEED_TOOLS, run, tempDir } from './helpers.js';

const AK_ATTRS = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign';

describe('interoperability with tpm2-tools', { skip: NEED_TOOLS }, () => {
  let swtpm: Swtpm;
  let tpm: Tpm;
  let dir: { path: string; remove(): Promise<void> };
  const message = new Uint8Array(32).map((_, i) => i * 7 + 1);
  const at = (file: string) => join(dir.path, file);
  /** tpm2-tools talks to the same swtpm; it keeps no resource manager, so we flush for it. */
  const tools = async (cmd: string, args: string[]) => {
    // swtpm serves one connection at a time: ours must be closed while a tool runs.
    await tpm.close();
    const result = await run(cmd, args, { TPM2TOOLS_TCTI: swtpm.tcti });
    await run('tpm2_flushcontext', ['-t'], { TPM2TOOLS_TCTI: swtpm.tcti });
    return result;
  };

  before(async () => {
    dir = await tempDir('unc-interop-');
    swtpm = await Swtpm.start();
    tpm = new Tpm(swtpm.transport());
    await tpm.startup();
  });

  after(async () => {
    await tpm?.close();
    await swtpm?.dispose();
    await dir?.remove();
  });

  test('tpm2_print and tpm2_checkquote accept our quote, our AK public and our SPKI', async () => {
    const { ak, q } = await tpm.withAk({}, async (key) => ({
      ak: key,
      q: await tpm.quote(key.handle, message),
    }));
    await writeFile(at('quote.msg'), q.attest);
    await writeFile(at('quote.sig'), q.signature);
    await writeFile(at('ak.pub'), ak.tpm2bPublic);
    await writeFile(at('ak.pem'), toPem('PUBLIC KEY', publicKeyToSpki(ak.public)));

    const printed = await tools('tpm2_print', ['-t', 'TPMS_ATTEST', at('quote.msg')]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /type: 8018/);
    assert.match(printed.stdout, new RegExp(`extraData: ${hex(message)}`));
    assert.match(
      printed.stdout,
      new RegExp(`qualifiedSigner: ${hex(parseAttest(q.attest).qualifiedSigner)}`),
    );

    const pem = await tools('tpm2_print', ['-t', 'TPM2B_PUBLIC', '-f', 'pem', at('ak.pub')]);
    assert.equal(pem.code, 0, pem.stderr);
    assert.equal(pem.stdout.trim(), (await readFile(at('ak.pem'), 'utf8')).trim());

    const checked = await tools('tpm2_checkquote', [
      '-u',
      at('ak.pem'),
      '-m',
      at('quote.msg'),
      '-s',
      at('quote.sig'),
      '-q',
      hex(message),
      '-g',
      'sha256',
    ]);
    assert.equal(checked.code, 0, checked.stderr);

    const wrong = await tools('tpm2_checkquote', [
      '-u',
      at('ak.pem'),
      '-m',
      at('quote.msg'),
      '-s',
      at('quote.sig'),
      '-q',
      hex(new Uint8Array(32)),
      '-g',
      'sha256',
    ]);
    assert.notEqual(wrong.code, 0, 'a different nonce must not check');
    assert.match(wrong.stderr, /nonce/i);
  });

  test('tpm2_createprimary with the same template derives the very same AK', async () => {
    const ours = await tpm.withAk({}, async (ak) => ak.tpm2bPublic);
    const created = await tools('tpm2_createprimary', [
      '-C',
      'e',
      '-G',
      'ecc256:ecdsa-sha256:null',
      '-g',
      'sha256',
      '-a',
      AK_ATTRS,
      '-c',
      at('ak.ctx'),
    ]);
    assert.equal(created.code, 0, created.stderr);
    // The context file outlives the flushed object; tpm2-tools reloads it for each command.
    const read = await tools('tpm2_readpublic', ['-c', at('ak.ctx'), '-f', 'tss', '-o', at('tools-ak.pub')]);
    assert.equal(read.code, 0, read.stderr);
    assert.deepEqual(new Uint8Array(await readFile(at('tools-ak.pub'))), ours);
  });

  test('we parse and verify what tpm2_quote and tpm2_gettime write', async () => {
    const publicArea = unwrapTpm2bPublic(new Uint8Array(await readFile(at('tools-ak.pub'))));
    const ak = unmarshalPublic(publicArea);

    const quoted = await tools('tpm2_quote', [
      '-c',
      at('ak.ctx'),
      '-l',
      'sha256:0',
      '-q',
      hex(message),
      '-m',
      at('tools-quote.msg'),
      '-s',
      at('tools-quote.sig'),
      '-g',
      'sha256',
    ]);
    assert.equal(quoted.code, 0, quoted.stderr);
    const attest = new Uint8Array(await readFile(at('tools-quote.msg')));
    const signature = new Uint8Array(await readFile(at('tools-quote.sig')));
    assert.equal(verifyAttestSignature(ak, attest, signature), true);
    assert.deepEqual(marshalSignature(parseSignature(signature)), signature);
    const parsed = parseAttest(attest);
    assert.equal(parsed.type, TPM_ST.ATTEST_QUOTE);
    assert.deepEqual(parsed.extraData, message);

    const timed = await tools('tpm2_gettime', [
      '-c',
      at('ak.ctx'),
      '-q',
      hex(message),
      '--attestation',
      at('tools-time.msg'),
      '-o',
      at('tools-time.sig'),
    ]);
    assert.equal(timed.code, 0, timed.stderr);
    const timeAttest = new Uint8Array(await readFile(at('tools-time.msg')));
    const timeSig = new Uint8Array(await readFile(at('tools-time.sig')));
    assert.equal(verifyAttestSignature(ak, timeAttest, timeSig), true);
    const t = parseAttest(timeAttest);
    assert.equal(t.type, TPM_ST.ATTEST_TIME);
    assert.deepEqual(t.extraData, message);
    // tpm2_gettime prints the time it got; it must be the time inside the attestation.
    assert.equal(t.attested.type, 'time');
    if (t.attested.type === 'time') assert.match(timed.stdout, new RegExp(`time: ${t.attested.time}\\b`));
  });

  test('our GetTime output has the layout tpm2_gettime writes', async () => {
    const ours = await tpm.withAk({}, async (ak) => tpm.getTime(ak.handle, message));
    const tools_ = new Uint8Array(await readFile(at('tools-time.msg')));
    // Same signer, same extraData, same structure: only clock, time values may differ.
    const a = parseAttest(ours.attest);
    const b = parseAttest(tools_);
    assert.equal(ours.attest.length, tools_.length);
    assert.deepEqual(a.qualifiedSigner, b.qualifiedSigner);
    assert.deepEqual(a.extraData, b.extraData);
    assert.equal(a.firmwareVersion, b.firmwareVersion);
    assert.equal(ours.signature.length > 8, true);
  });

  test('NV_Read reads an index tpm2_nvdefine and tpm2_nvwrite made', async () => {
    const index = '0x1500016';
    const data = new Uint8Array(700).map((_, i) => (i * 13) & 0xff);
    await writeFile(at('nv.bin'), data);
    const defined = await tools('tpm2_nvdefine', [
      index,
      '-C',
      'o',
      '-s',
      String(data.length),
      '-a',
      'ownerread|ownerwrite|authread|authwrite',
    ]);
    assert.equal(defined.code, 0, defined.stderr);
    const written = await tools('tpm2_nvwrite', [index, '-C', 'o', '-i', at('nv.bin')]);
    assert.equal(written.code, 0, written.stderr);

    const pub = await tpm.nvReadPublic(Number(index));
    assert.equal(pub.dataSize, data.length);
    assert.deepEqual(await tpm.nvRead(Number(index)), data);
    assert.deepEqual(await tpm.nvRead(Number(index), { authHandle: 'owner' }), data);
    assert.deepEqual(await tpm.nvRead(Number(index), { offset: 600, size: 50 }), data.subarray(600, 650));
  });

  test('tpm2_getcap sees no transient handles after our quote', async () => {
    await tpm.withAk({}, async (ak) => tpm.quote(ak.handle, message));
    assert.deepEqual(await tpm.transientHandles(), []);
    const cap = await tools('tpm2_getcap', ['handles-transient']);
    assert.equal(cap.code, 0, cap.stderr);
    assert.equal(cap.stdout.trim(), '');
  });
});
