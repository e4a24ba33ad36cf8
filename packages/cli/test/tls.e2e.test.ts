/**
 * Renters' data in transit, end to end with real processes: `unc dev`, `unc miner start` serving
 * its provider API over TLS 1.3 with its own certificate, the offer pinning the certificate's
 * fingerprint on chain (`unc market offer create`), and `unc job ocr` connecting only to it.
 * A man in the middle on loopback (a TLS proxy started here, with another certificate) receives no
 * byte of the job; a plain-http endpoint on a chain that is not a dev chain (`unc start` with a
 * genesis that refuses software chips) is refused without a connection; a certificate rotation
 * (`unc market offer rotate-tls`, then `retire-tls`) loses no job of a renter running jobs
 * throughout; and a renter whose cached fingerprint is stale re-reads the chain and connects.
 *
 * The agent answers its chip's challenges with a heartbeat operator's key (dev8, `unc chip
 * set-operator`, `unc miner start --operator-for`), not the owner's (dev9), which the CLI signs the
 * offer's transactions with: two signers of one key raced for its nonces (a heartbeat taking the
 * nonce the CLI had just signed at, NONCE_USED, signed again at most three times), and the test
 * failed once under CI load. docs/operators.md keeps the owner key off the miner host this way.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { addressFromPublicKey, encodeAddress, fromHex, toHex } from '@unc/core';
import {
  createProviderCertificate,
  DevSoftSigner,
  prepareNextCertificate,
  readProviderCertificate,
} from '@unc/miner';
import { DEV_MODELS, devChipKey, devGenesisJson, devKey } from '@unc/node';
import { type ChipJson, ProviderClient, UncClient } from '@unc/sdk';
import { until } from '@unc/test-utils';
import { type DevNode, runUnc, startDev, tempHome, UNC, waitForProvenChips } from './helpers.js';

const SAMPLE = fileURLToPath(new URL('../../../miner/test/fixtures/ocr-sample.png', import.meta.url));
const SAMPLE_TEXT = 'UtilityNet 2026 rental receipt';
const RENTER = 'dev3';

function spawnUnc(args: string[], ready: RegExp): Promise<{ proc: ChildProcess; out: () => string }> {
  const proc = spawn(process.execPath, [UNC, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UNC_LOG_LEVEL: 'warn' },
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`unc ${args[0]} did not start:\n${out}`)), 60_000);
    proc.stdout!.on('data', () => {
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve({ proc, out: () => out });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`unc ${args[0]} exited with ${code}:\n${out}`));
    });
  });
}

async function stop(proc: ChildProcess | null | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

describe('provider endpoints over TLS with the certificate pinned on chain', () => {
  const home = tempHome();
  let dev: DevNode;
  let miner: { proc: ChildProcess; out: () => string } | null = null;
  let providerUrl: string;
  let client: UncClient;
  let chainId: string;
  let offerId: string;
  let leaseId: string;
  const chip = new DevSoftSigner(devChipKey(0).seed, DEV_MODELS[0].modelId, 'dev-chip-0');
  const tlsDir = join(home.dir, 'tls');

  const json = async (args: string[]) => {
    const r = await runUnc([...args, '--home', home.dir, '--output', 'json', '-y']);
    assert.equal(r.code, 0, `unc ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const ocr = (extra: string[] = []) =>
    runUnc(['job', 'ocr', SAMPLE, '--lease', leaseId, '--from', RENTER, '--home', home.dir, ...extra]);

  before(async () => {
    dev = await startDev(home.dir, ['--block-time', '250', '--chips', '0']);
    client = new UncClient(dev.url);
    chainId = (await client.status()).chainId;
    // unc miner init makes the provider's key and certificate in the home.
    const init = await json(['miner', 'init', '--from', 'dev9', '--dev-chips', '1']);
    assert.match(init.tlsFingerprint, /^[0-9a-f]{64}$/);
    // The owner's agent registers the chip and stops: from then on the owner key (dev9) signs only
    // what the CLI sends, and the chip is answered for by its heartbeat operator's agent (dev8).
    const owner = encodeAddress(addressFromPublicKey(devKey(9).publicKey));
    const operator = encodeAddress(addressFromPublicKey(devKey(8).publicKey));
    const ownerAgent = await spawnUnc(
      ['miner', 'start', '--home', home.dir, '--output', 'json'],
      /"chips": \[/,
    );
    const id = toHex(await chip.chipId());
    try {
      // Generous: the agent's start and its registration share a loaded machine's cores.
      const deadline = Date.now() + 120_000;
      for (;;) {
        try {
          await client.call<ChipJson>('unc_getChip', [id]);
          break;
        } catch (err) {
          if (Date.now() > deadline)
            throw new Error(
              `chip ${id.slice(0, 16)} not registered in 120 s: ${(err as Error).message}\n${ownerAgent.out()}`,
            );
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    } finally {
      await stop(ownerAgent.proc);
    }
    await json(['chip', 'set-operator', operator, '--from', 'dev9']);
    await until(
      'the heartbeat operator in force',
      async () => (await client.getChip(id)).heartbeatOperator === operator,
    );
    const answeredBefore = (await client.getChip(id)).slotsAnswered;
    miner = await spawnUnc(
      ['miner', 'start', '--home', home.dir, '--from', 'dev8', '--operator-for', owner].concat([
        '--provider-port',
        '0',
        '--output',
        'json',
      ]),
      /"tlsFingerprint": "[0-9a-f]{64}"/,
    );
    providerUrl = /"provider": "(https:\/\/127\.0\.0\.1:\d+)"/.exec(miner.out())![1]!;
    const served = /"tlsFingerprint": "([0-9a-f]{64})"/.exec(miner.out())![1];
    assert.equal(served, init.tlsFingerprint, 'the agent serves the certificate init made');
    // Only a chip proven online is rented: wait for the operator's first answered challenge.
    await waitForProvenChips(dev.url, [id]);
    await until(
      "the operator's first answer",
      async () => {
        const [c, acc] = await Promise.all([client.getChip(id), client.getAccount(operator)]);
        return c.slotsAnswered > answeredBefore && acc.nonce > 0;
      },
      { timeoutMs: 120_000 },
    );
    const offer = await json(
      ['market', 'offer', 'create', '--from', 'dev9', '--chips', id, '--price', '1'].concat([
        '--min-hours',
        '1',
        '--max-hours',
        '24',
        '--notice',
        '10m',
        '--endpoint',
        providerUrl,
      ]),
    );
    offerId = offer.offerId;
    leaseId = (await json(['market', 'lease', offerId, '--from', RENTER, '--hours', '2'])).leaseId;
  });

  after(async () => {
    await stop(miner?.proc);
    await dev?.stop();
    home.cleanup();
  });

  test('the offer pins the certificate; a lease runs an OCR job over TLS', async () => {
    const fingerprint = readProviderCertificate(tlsDir)!.fingerprint;
    assert.deepEqual((await client.getOffer(offerId)).tlsFingerprints, [fingerprint]);
    assert.deepEqual((await client.getLease(leaseId)).tlsFingerprints, [fingerprint]);
    assert.ok((await client.getLease(leaseId)).endpoint.startsWith('https://'));
    const res = await ocr();
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.split('\n')[0], SAMPLE_TEXT);
    // Mutual TLS: the renter may present a certificate of its own key.
    const mutual = await ocr(['--client-cert']);
    assert.equal(mutual.code, 0, mutual.stderr);
  });

  test('a man in the middle presenting another certificate is refused before any byte of the job leaves', async () => {
    const target = new URL(providerUrl);
    const own = createProviderCertificate('impostor');
    let received = 0;
    let connections = 0;
    const proxy = createTlsServer({ key: own.keyPem, cert: own.certPem }, (c) => {
      const up = tlsConnect({ host: target.hostname, port: Number(target.port), rejectUnauthorized: false });
      c.on('data', (d: Buffer) => {
        received += d.length;
        up.write(d);
      });
      up.on('data', (d: Buffer) => c.write(d));
      const close = () => {
        c.destroy();
        up.destroy();
      };
      c.on('error', close);
      up.on('error', close);
      c.on('close', close);
    });
    proxy.on('connection', () => connections++);
    proxy.on('tlsClientError', () => {});
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as { port: number }).port;
    try {
      const res = await ocr(['--endpoint', `https://127.0.0.1:${port}`]);
      assert.equal(res.code, 1);
      const expected = readProviderCertificate(tlsDir)!.fingerprint;
      assert.match(res.stderr, new RegExp(`presented .*${own.fingerprint}`));
      assert.match(res.stderr, new RegExp(`chain lists ${expected}`));
      assert.ok(connections >= 1, 'the client did reach the proxy');
      assert.equal(received, 0, 'the impostor received application bytes');
    } finally {
      proxy.close();
    }
  });

  test('certificate rotation with overlap loses no job; a renter with a stale fingerprint re-reads the chain', async () => {
    const old = readProviderCertificate(tlsDir)!.fingerprint;
    const cached = (await client.getLease(leaseId)).tlsFingerprints;
    const refresh = async () => (await client.getLease(leaseId)).tlsFingerprints;
    const image = new Uint8Array(readFileSync(SAMPLE));
    const renterSeed = devKey(3).seed;
    const newClient = (fingerprints: readonly string[]) =>
      new ProviderClient({
        endpoint: providerUrl,
        chainId,
        leaseId,
        renterSeed,
        tlsFingerprints: fingerprints,
        refreshTlsFingerprints: refresh,
      });
    // A renter keeps running jobs, each on a fresh connection with the fingerprints it read at the
    // start, while the provider rotates; every job must come back done.
    let rotating = true;
    const results: string[] = [];
    const worker = (async () => {
      while (rotating || results.length < 3) {
        const c = newClient(cached);
        try {
          results.push((await c.runOcr(image)).job.status);
        } catch (err) {
          results.push(`failed: ${(err as Error).message}`);
        } finally {
          c.close();
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    let rotated: { previous: string; current: string };
    try {
      rotated = await json(['market', 'offer', 'rotate-tls', offerId, '--from', 'dev9']);
      assert.equal(rotated.previous, old);
      assert.deepEqual((await client.getOffer(offerId)).tlsFingerprints, [old, rotated.current]);
      // The agent serves the new certificate once it sees the file (the chain already lists it);
      // by a deadline, not a count of tries, since each try's time grows with the machine's load.
      const serving = Date.now() + 60_000;
      for (;;) {
        const probe = new ProviderClient({
          endpoint: providerUrl,
          chainId,
          leaseId,
          renterSeed,
          tlsFingerprints: [rotated.current],
        });
        const ok = await probe.health().then(
          () => true,
          () => false,
        );
        probe.close();
        if (ok) break;
        assert.ok(
          Date.now() < serving,
          `the agent did not start serving the new certificate:\n${miner?.out()}`,
        );
        await new Promise((r) => setTimeout(r, 250));
      }
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      // A failed step must not leave the job loop running against a stopped provider for ever.
      rotating = false;
    }
    await worker;
    assert.ok(results.length >= 3);
    assert.deepEqual(
      results.filter((r) => r !== 'done'),
      [],
      'a job was lost during the rotation',
    );

    // The overlap ends: only the new certificate is listed.
    const retired = await json(['market', 'offer', 'retire-tls', offerId, '--from', 'dev9']);
    assert.deepEqual(retired.fingerprints, [rotated.current]);
    assert.deepEqual((await client.getOffer(offerId)).tlsFingerprints, [rotated.current]);
    // A renter whose cache still says the old fingerprint re-reads the chain once and connects.
    let reads = 0;
    const stale = new ProviderClient({
      endpoint: providerUrl,
      chainId,
      leaseId,
      renterSeed,
      tlsFingerprints: [old],
      refreshTlsFingerprints: async () => {
        reads++;
        return refresh();
      },
    });
    try {
      assert.equal((await stale.runOcr(image)).job.status, 'done');
      assert.equal(reads, 1);
      assert.deepEqual(stale.tlsFingerprints, [rotated.current]);
    } finally {
      stale.close();
    }
    // And the CLI, which reads the lease from the chain, connects as before.
    const res = await ocr();
    assert.equal(res.code, 0, res.stderr);

    // A suspected leak of the key: --revoke lists the new certificate alone, with no overlap in
    // which whoever holds the old key would be accepted, and does not take a next key that lay on
    // disk beside the leaked one.
    const planted = prepareNextCertificate(tlsDir);
    const revoked = await json(['market', 'offer', 'rotate-tls', offerId, '--from', 'dev9', '--revoke']);
    assert.equal(revoked.previous, rotated.current);
    assert.notEqual(revoked.current, planted.fingerprint);
    assert.deepEqual((await client.getOffer(offerId)).tlsFingerprints, [revoked.current]);
    const serving = Date.now() + 60_000;
    for (;;) {
      const r = await ocr();
      if (r.code === 0) break;
      assert.ok(Date.now() < serving, `the agent did not start serving the new certificate: ${r.stderr}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  });
});

describe('a plain-http provider endpoint on a chain that is not a dev chain', () => {
  const home = tempHome();
  let node: { proc: ChildProcess; out: () => string } | null = null;
  after(async () => {
    await stop(node?.proc);
    home.cleanup();
  });

  test('is refused before any connection is made', async () => {
    const nodeHome = join(home.dir, 'node');
    mkdirSync(nodeHome, { recursive: true });
    const init = await runUnc(['init', '--home', nodeHome, '--output', 'json']);
    assert.equal(init.code, 0, init.stderr);
    const validator = JSON.parse(init.stdout).validatorPublicKey as string;
    const genesis = devGenesisJson({ validators: [{ publicKey: fromHex(validator, 32), name: 'v' }] });
    genesis.chainId = 'unc-tls-test-1';
    (genesis.poci as Record<string, unknown>).devSoftEnabled = false;
    const genesisFile = join(home.dir, 'genesis.json');
    writeFileSync(genesisFile, JSON.stringify(genesis));
    node = await spawnUnc(
      ['start', '--home', nodeHome, '--genesis', genesisFile, '--validator'].concat([
        '--rpc-port',
        '0',
        '--p2p-port',
        '0',
      ]),
      /RPC\s+http:\/\/127\.0\.0\.1:\d+/,
    );
    const rpc = /RPC\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(node.out())![1]!;
    assert.equal((await new UncClient(rpc).getParams()).devChain, false);

    let connections = 0;
    const plain = createNetServer((s: Socket) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const port = (plain.address() as { port: number }).port;
    try {
      const res = await runUnc(
        ['job', 'ocr', SAMPLE, '--lease', 'ab'.repeat(32), '--from', RENTER].concat([
          '--endpoint',
          `http://127.0.0.1:${port}`,
          '--node',
          rpc,
          '--home',
          home.dir,
        ]),
      );
      assert.equal(res.code, 1);
      assert.match(res.stderr, /refusing the plain http:\/\/ provider endpoint .* not a dev chain/);
      assert.equal(connections, 0);
    } finally {
      plain.close();
    }
  });
});
