/**
 * Every fresh `unc testnet` genesis keeps the dev chain id, so the keyring's dev keys send there, and
 * is safe with it only because each gets fresh validator keys: no validator key sits in two
 * testnets' sets, so no honest vote of one is evidence on another (docs/consensus.md). These run
 * the command's own home-and-genesis step and read the genesis it writes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseGenesis, toHex } from '@unc/core';
import { DEV_CHAIN_ID, devAccounts, devGenesisJson, devGovernanceKey } from '@unc/node';
import { prepareTestnet } from '../src/commands/testnet.js';
import { Keyring } from '../src/keyring.js';

function validatorKeys(genesisPath: string): string[] {
  return parseGenesis(JSON.parse(readFileSync(genesisPath, 'utf8'))).validators.map((v) =>
    toHex(v.publicKey),
  );
}

test('the genesis `unc testnet` writes has the dev chain id and fresh validator keys', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-testnet-keys-'));
  try {
    const runs = [];
    for (const net of ['a', 'b']) {
      const keyring = new Keyring(join(dir, `home-${net}`));
      const { homes, genesisPath } = await prepareTestnet({
        dir: join(dir, net),
        validators: 3,
        blockTimeMs: 1000,
        keyring,
      });
      const genesis = parseGenesis(JSON.parse(readFileSync(genesisPath, 'utf8')));
      assert.equal(genesis.chainId, DEV_CHAIN_ID);
      const keys = validatorKeys(genesisPath);
      assert.deepEqual(
        keys,
        homes.map((h) => h.validatorPublicKey),
        'the genesis lists the validator keys of the homes it made',
      );
      runs.push(...keys);
    }
    const devChain = parseGenesis(devGenesisJson({})).validators.map((v) => toHex(v.publicKey));
    assert.equal(new Set(runs).size, 6, 'no validator key is in two testnets');
    for (const key of devChain)
      assert.ok(!runs.includes(key), "no testnet validator holds the dev chain's key");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a home that only ran `unc testnet` holds dev0…dev9 and governance for the testnet chain', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-testnet-keys-'));
  try {
    const keyring = new Keyring(join(dir, 'home'));
    const { genesisPath } = await prepareTestnet({
      dir: join(dir, 'net'),
      validators: 2,
      blockTimeMs: 1000,
      keyring,
    });
    const funded = new Set(
      (JSON.parse(readFileSync(genesisPath, 'utf8')).accounts as { address: string }[]).map((a) => a.address),
    );
    const expected = [...devAccounts(), devGovernanceKey()];
    for (const key of expected) {
      const info = keyring.info(key.name);
      assert.equal(info.kind, 'test');
      assert.equal(info.publicKey, toHex(key.publicKey));
      // Usable on the testnet's chain, refused on any other (the test kind's rule).
      assert.deepEqual(keyring.unlock(key.name, DEV_CHAIN_ID), key.seed);
    }
    for (const a of devAccounts()) assert.ok(funded.has(keyring.info(a.name).address), `${a.name} is funded`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a home holding the user's own `governance` key: `unc testnet` writes no dev key and says why", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-testnet-keys-'));
  try {
    const keyring = new Keyring(join(dir, 'home'));
    const mine = keyring.addEncrypted('governance', new Uint8Array(32).fill(7), 'correct horse battery');
    await assert.rejects(
      prepareTestnet({ dir: join(dir, 'net'), validators: 1, blockTimeMs: 1000, keyring }),
      (err: Error & { code?: string }) =>
        err.code === 'KEY_EXISTS' && /unc testnet/.test(err.message) && !/unc dev/.test(err.message),
    );
    // Refused whole: none of dev0…dev9 half-written before the name that clashes.
    assert.deepEqual(
      keyring.list().map((k) => k.name),
      ['governance'],
    );
    assert.equal(keyring.info('governance').address, mine.address);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a testnet folder whose genesis names a chain that is not a dev chain gets no public dev key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-testnet-keys-'));
  try {
    const net = join(dir, 'net');
    const first = new Keyring(join(dir, 'first'));
    const { homes, genesisPath, recordPath } = await prepareTestnet({
      dir: net,
      validators: 1,
      blockTimeMs: 1000,
      keyring: first,
    });
    // What the command records once its nodes run, so that a second run resumes this testnet.
    writeFileSync(recordPath, JSON.stringify({ genesis: genesisPath, nodes: homes }));
    // The genesis in the folder edited to another chain's id (a real network's, say): the public
    // dev keys bound to it would be spendable there by anyone.
    const genesis = JSON.parse(readFileSync(genesisPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(genesisPath, `${JSON.stringify({ ...genesis, chainId: 'unc-main-1' }, null, 2)}\n`);
    const keyring = new Keyring(join(dir, 'home'));
    await assert.rejects(
      prepareTestnet({ dir: net, validators: 1, blockTimeMs: 1000, keyring }),
      (err: Error & { code?: string }) => err.code === 'NOT_A_DEV_CHAIN',
    );
    assert.deepEqual(keyring.list(), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
