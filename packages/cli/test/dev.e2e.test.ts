import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { formatUnc, parseUnc } from '@unc/core';
import { type BlockJson, UncClient } from '@unc/sdk';
import { type DevNode, runUnc, startDev, tempHome } from './helpers.js';

describe('unc dev end to end', () => {
  const home = tempHome();
  let dev: DevNode;
  let client: UncClient;

  before(async () => {
    dev = await startDev(home.dir, ['--block-time', '250']);
    client = new UncClient(dev.url);
  });
  after(async () => {
    await dev?.stop();
    home.cleanup();
  });

  test('prints the dev accounts, stores them as dev0…dev9 and records the RPC URL', async () => {
    const out = dev.output();
    for (let i = 0; i < 10; i++) assert.match(out, new RegExp(`dev${i}\\s+unc1[0-9a-z]{38}`));
    assert.match(out, /Data dir/);
    const list = await runUnc(['keys', 'list', '--home', home.dir, '--output', 'json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { name: string }[]).map((k) => k.name),
      ['dev0', 'dev1', 'dev2', 'dev3', 'dev4', 'dev5', 'dev6', 'dev7', 'dev8', 'dev9', 'governance'],
    );
    assert.equal(JSON.parse(readFileSync(join(home.dir, 'config.json'), 'utf8')).node, dev.url);
  });

  test('a CLI transfer is included, and reads back over RPC and WebSocket', async () => {
    const keys = JSON.parse(
      (await runUnc(['keys', 'list', '--home', home.dir, '--output', 'json'])).stdout,
    ) as {
      name: string;
      address: string;
    }[];
    const to = keys.find((k) => k.name === 'dev1')!.address;
    const before = BigInt((await client.getAccount(to)).balance);

    const blocks: BlockJson[] = [];
    const sub = await client.subscribe<BlockJson>('newBlocks', [], (b) => blocks.push(b));
    const res = await runUnc([
      'tx',
      'transfer',
      '--home',
      home.dir,
      '--from',
      'dev0',
      '--to',
      to,
      '--amount',
      '12.5',
      '--yes',
      '--output',
      'json',
    ]);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout) as { hash: string; height: number; status: string };
    assert.equal(out.status, 'included');

    const receipt = await client.getTransaction(out.hash);
    assert.equal(receipt.height, out.height);
    const action = receipt.tx.actions[0]!;
    assert.ok(action.type === 'transfer' && action.amount === parseUnc('12.5').toString());
    assert.equal(BigInt((await client.getAccount(to)).balance), before + parseUnc('12.5'));
    // The block that included it arrived over the WebSocket subscription (a generous deadline: on a
    // loaded machine the push can lag the RPC answer by seconds).
    const deadline = Date.now() + 30_000;
    while (!blocks.some((b) => b.height === out.height) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    sub.close();
    const viaWs = blocks.find((b) => b.height === out.height);
    assert.ok(viaWs, 'block not received over WebSocket');
    assert.ok((viaWs.txs as string[]).includes(out.hash));

    const q = await runUnc(['query', 'tx', out.hash, '--home', home.dir]);
    assert.equal(q.code, 0, q.stderr);
    assert.match(q.stdout, new RegExp(`${formatUnc(parseUnc('12.5'))} UNC to ${to}`));
    const acct = await runUnc(['query', 'account', to, '--prove', '--home', home.dir, '--output', 'json']);
    assert.equal(acct.code, 0, acct.stderr);
    assert.equal(JSON.parse(acct.stdout).verified, true);
  });

  test('the conventions: global options anywhere, key names, id prefixes, -y, explorer links, hints', async () => {
    // The hints name the --home and --node this dev chain runs with.
    assert.match(dev.output(), new RegExp(`npx unc --home ${home.dir} --node ${dev.url} status`));
    const status = await runUnc(['--home', home.dir, '-o', 'json', 'status']);
    assert.equal(status.code, 0, status.stderr);
    const { chainId } = JSON.parse(status.stdout) as { chainId: string };
    const dev1 = (
      await client.getAccount(
        JSON.parse((await runUnc(['keys', 'show', 'dev1', '--home', home.dir, '-o', 'json'])).stdout).address,
      )
    ).address;
    const dev0 = JSON.parse((await runUnc(['keys', 'show', 'dev0', '--home', home.dir, '-o', 'json'])).stdout)
      .address as string;

    // Without a terminal and without -y: a clear error at once, nothing signed or sent.
    const nonce = (await client.getAccount(dev0)).nonce;
    const refused = await runUnc([
      'tx',
      'transfer',
      '--from',
      'dev0',
      '--to',
      'dev1',
      '--amount',
      '1',
      '--home',
      home.dir,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /no terminal to confirm on: pass -y/);
    assert.equal((await client.getAccount(dev0)).nonce, nonce);

    // Pre-flight: more than the balance is refused before signing, in UNC.
    const broke = await runUnc([
      'tx',
      'transfer',
      '--from',
      'dev0',
      '--to',
      'dev1',
      '--amount',
      '99999999999',
      '-y',
      '--home',
      home.dir,
    ]);
    assert.equal(broke.code, 1);
    assert.match(
      broke.stderr,
      /dev0 holds [\d.]+ UNC but this needs 99999999999\.\d+ UNC .*nothing was signed/,
    );

    // A key name where the address goes; -y after the command; the explorer page when it is served.
    const before = BigInt((await client.getAccount(dev1)).balance);
    const sent = await runUnc([
      'tx',
      'transfer',
      '--from',
      'dev0',
      '--to',
      'dev1',
      '--amount',
      '2',
      '--home',
      home.dir,
      '-y',
      '-o',
      'json',
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    const out = JSON.parse(sent.stdout) as { hash: string; explorer: string | null };
    assert.equal(BigInt((await client.getAccount(dev1)).balance), before + parseUnc('2'));
    const served = (await fetch(`${dev.url}/explorer/`, { method: 'HEAD' })).ok;
    assert.equal(out.explorer, served ? `${dev.url}/explorer/#/tx/${out.hash}` : null);
    assert.ok(chainId.length > 0);

    // A chip by the 16 hex digits and "…" the text output shows.
    const list = await runUnc(['chip', 'list', '--home', home.dir]);
    const shown = /^([0-9a-f]{16})…/m.exec(list.stdout);
    if (shown) {
      const show = await runUnc(['chip', 'show', `${shown[1]}…`, '--home', home.dir, '-o', 'json']);
      assert.equal(show.code, 0, show.stderr);
      assert.ok((JSON.parse(show.stdout) as { chipId: string }).chipId.startsWith(shown[1]!));
    }
  });

  test('unc init makes a consensus key of its own; unc tx bond --consensus-key registers it, unbond starts the way back', async () => {
    const keys = JSON.parse(
      (await runUnc(['keys', 'list', '--home', home.dir, '--output', 'json'])).stdout,
    ) as { name: string; address: string }[];
    const account = keys.find((k) => k.name === 'dev4')!.address;
    // The validator host: `unc init` takes no account key, and signs the proof for the account.
    const host = tempHome();
    try {
      const init = await runUnc(['init', '--home', host.dir, '--output', 'json']);
      assert.equal(init.code, 0, init.stderr);
      const consensusKey = JSON.parse(init.stdout).validatorPublicKey as string;
      const { chainId } = await client.status();
      const proof = await runUnc([
        'consensus-key',
        '--home',
        host.dir,
        '--account',
        account,
        '--chain-id',
        chainId,
        '--output',
        'json',
      ]);
      assert.equal(proof.code, 0, proof.stderr);
      assert.equal(JSON.parse(proof.stdout).publicKey, consensusKey);
      const proofFile = join(host.dir, 'consensus-key.json');
      writeFileSync(proofFile, proof.stdout);
      // A bond alone names no key: no candidate.
      const bare = await runUnc([
        'tx',
        'bond',
        '--from',
        'dev4',
        '--amount',
        '1',
        '--yes',
        '--home',
        home.dir,
      ]);
      assert.equal(bare.code, 0, bare.stderr);
      assert.equal((await client.call<{ candidates: number }>('unc_getValidators', [])).candidates, 0);
      // The private key file is refused: only the public proof travels to the wallet machine. The
      // key and 999 more UNC make the minimum validator bond (1,000 UNC), which a candidate needs.
      const leak = await runUnc(
        [
          'tx',
          'bond',
          '--from',
          'dev4',
          '--amount',
          '999',
          '--yes',
          '--home',
          home.dir,
          '--consensus-key',
        ].concat(join(host.dir, 'config', 'validator_key.json')),
      );
      assert.notEqual(leak.code, 0);
      assert.match(leak.stderr, /private key/);
      const bond = await runUnc(
        ['tx', 'bond', '--from', 'dev4', '--amount', '999', '--yes', '--consensus-key', proofFile].concat([
          '--home',
          home.dir,
          '--output',
          'json',
        ]),
      );
      assert.equal(bond.code, 0, bond.stderr);
      assert.equal(JSON.parse(bond.stdout).status, 'included');
    } finally {
      host.cleanup();
    }
    const set = await client.call<{ candidates: number }>('unc_getValidators', []);
    assert.equal(set.candidates, 1);
    const unbond = await runUnc([
      'tx',
      'unbond',
      '--from',
      'dev4',
      '--amount',
      '1000',
      '--yes',
      '--home',
      home.dir,
    ]);
    assert.equal(unbond.code, 0, unbond.stderr);
    assert.match(unbond.stdout, /^unbonding 1000 UNC at height \d+/);
    assert.equal((await client.call<{ candidates: number }>('unc_getValidators', [])).candidates, 0);
  });

  test('status JSON has the latest committed block', async () => {
    const res = await runUnc(['status', '--home', home.dir, '--output', 'json']);
    assert.equal(res.code, 0, res.stderr);
    const s = JSON.parse(res.stdout);
    for (const field of ['chainId', 'height', 'hash', 'stateRoot', 'time']) assert.ok(field in s, field);
    const block = await client.getBlock(s.height);
    assert.equal(block.hash, s.hash);
    assert.equal(block.stateRoot, s.stateRoot);
  });

  test('bad input gets one clear line and a non-zero exit, and sends nothing', async () => {
    // Nothing was sent: the senders' nonces do not move (the dev miner's heartbeats do, elsewhere).
    const senders = [
      'unc1r6trp2ppkm5jpmte2rsxn4nr3e2pfmk6ngw6an',
      'unc1gu8vpg6gy7tuag3vlwhpkrg84m059zsh8qpswh',
    ];
    const noncesBefore = await Promise.all(senders.map(async (a) => (await client.getAccount(a)).nonce));
    const { height } = await client.status();
    const cases: [string[], RegExp][] = [
      [
        ['tx', 'transfer', '--from', 'dev0', '--to', 'unc1notanaddress', '--amount', '1', '--yes'],
        /invalid address/,
      ],
      [
        [
          'tx',
          'transfer',
          '--from',
          'dev0',
          '--to',
          'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34',
          '--amount',
          '1.2.3',
          '--yes',
        ],
        /invalid amount/,
      ],
      [
        [
          'tx',
          'transfer',
          '--from',
          'nobody',
          '--to',
          'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34',
          '--amount',
          '1',
          '--yes',
        ],
        /no key named "nobody"/,
      ],
      [
        [
          'tx',
          'transfer',
          '--from',
          '../etc',
          '--to',
          'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34',
          '--amount',
          '1',
          '--yes',
        ],
        /invalid key name/,
      ],
      [
        [
          'tx',
          'transfer',
          '--from',
          'dev0',
          '--to',
          'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34',
          '--amount',
          '1',
          '--yes',
          '--node',
          'ftp://x',
        ],
        /invalid node URL/,
      ],
      [['status', '--node', 'http://127.0.0.1:9'], /cannot reach the node/],
      [
        [
          'tx',
          'transfer',
          '--from',
          'dev2',
          '--to',
          'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34',
          '--amount',
          '999999999',
          '--yes',
        ],
        /INSUFFICIENT_FUNDS|balance/,
      ],
      [['query', 'block', 'nope'], /invalid block/],
      [['query', 'tx', '1234'], /invalid transaction hash/],
    ];
    for (const [args, pattern] of cases) {
      const res = await runUnc([...args, '--home', home.dir]);
      assert.notEqual(res.code, 0, `expected failure for ${args.join(' ')}`);
      assert.match(res.stderr, pattern, args.join(' '));
      assert.equal(res.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${res.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 600));
    const noncesAfter = await Promise.all(senders.map(async (a) => (await client.getAccount(a)).nonce));
    assert.deepEqual(noncesAfter, noncesBefore);
    assert.ok((await client.status()).height >= height);
  });

  test('keys add and import keep the secret encrypted; import recovers the same address', async () => {
    const pw = join(home.dir, 'pw.txt');
    writeFileSync(pw, 'correct horse battery\n', { mode: 0o600 });
    const add = await runUnc([
      'keys',
      'add',
      'alice',
      '--password-file',
      pw,
      '--home',
      home.dir,
      '--output',
      'json',
    ]);
    assert.equal(add.code, 0, add.stderr);
    const created = JSON.parse(add.stdout) as { address: string; mnemonic: string };
    assert.equal(created.mnemonic.split(' ').length, 24);
    const file = readFileSync(join(home.dir, 'keyring', 'alice.json'), 'utf8');
    assert.ok(!file.includes(created.mnemonic.split(' ')[0]! + ' '), 'mnemonic must not be stored');
    assert.match(file, /aes-256-gcm/);

    const mf = join(home.dir, 'm.txt');
    writeFileSync(mf, created.mnemonic, { mode: 0o600 });
    const imp = await runUnc([
      'keys',
      'import',
      'alice2',
      '--mnemonic-file',
      mf,
      '--password-file',
      pw,
      '--home',
      home.dir,
      '--output',
      'json',
    ]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.equal(JSON.parse(imp.stdout).address, created.address);
    const show = await runUnc(['keys', 'show', 'alice2', '--home', home.dir]);
    assert.match(show.stdout, new RegExp(created.address));
    const dup = await runUnc(['keys', 'add', 'alice', '--password-file', pw, '--home', home.dir]);
    assert.notEqual(dup.code, 0);
    assert.match(dup.stderr, /already exists/);

    // Fund alice, then spend with the password; a wrong password is refused.
    const transfer = (from: string, to: string, amount: string, extra: string[] = []) =>
      runUnc([
        'tx',
        'transfer',
        '--from',
        from,
        '--to',
        to,
        '--amount',
        amount,
        '--yes',
        ...extra,
        '--home',
        home.dir,
      ]);
    const fund = await transfer('dev3', created.address, '5');
    assert.equal(fund.code, 0, fund.stderr);
    const bad = join(home.dir, 'bad.txt');
    writeFileSync(bad, 'wrong password', { mode: 0o600 });
    const bob = 'unc1vystcnlgdeut2u2v57a0lacv4url68zepr0t34';
    const wrong = await transfer('alice', bob, '1', ['--password-file', bad]);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /wrong password/);
    const spend = await transfer('alice', bob, '1', ['--password-file', pw]);
    assert.equal(spend.code, 0, spend.stderr);
    assert.match(spend.stdout, /included at height \d+/);
  });
});
