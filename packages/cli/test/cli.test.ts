/**
 * The CLI's conventions without a node: global options anywhere, config and env precedence, key
 * names as addresses, id prefixes, the confirmation policy, pre-flight checks, keys
 * delete|rename|export, completion scripts, one version.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MAX_MODEL_POWER, ONE_UNC, parseCertificate, pemToDer, UncError } from '@unc/core';
import { devKey } from '@unc/node';
import type { OfferJson } from '@unc/sdk';
import fc from 'fast-check';
import { devHints } from '../src/commands/dev.js';
import { checkLease } from '../src/commands/market.js';
import { consensusOptionsOf } from '../src/commands/start.js';
import { Context, DEFAULT_NODE, resolveAddress } from '../src/context.js';
import { chipCursorBefore, MIN_PREFIX, parseId, pickByPrefix } from '../src/ids.js';
import { Keyring } from '../src/keyring.js';
import { checkBalance, confirm, confirmationLines } from '../src/send.js';
import { CLI_VERSION } from '../src/version.js';
import { runUnc, tempHome } from './helpers.js';

const rejectsWith = async (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (err: unknown) => err instanceof UncError && err.code === code);
const throwsWith = (fn: () => unknown, code: string) =>
  assert.throws(fn, (err: unknown) => err instanceof UncError && err.code === code);

describe('global options and the home config', () => {
  const home = tempHome();
  after(() => home.cleanup());

  test('--home, --output and -o work before and after the command, with the same result', async () => {
    const keyring = new Keyring(home.dir);
    keyring.addTest('carol', devKey(3).seed, 'unc-dev-1');
    const before = await runUnc(['--home', home.dir, '-o', 'json', 'keys', 'list']);
    const afterward = await runUnc(['keys', 'list', '--output', 'json', '--home', home.dir]);
    const mixed = await runUnc(['keys', '--home', home.dir, 'list', '-o', 'json']);
    assert.equal(before.code, 0, before.stderr);
    assert.equal(before.stdout, afterward.stdout);
    assert.equal(before.stdout, mixed.stdout);
    assert.equal((JSON.parse(before.stdout) as { name: string }[])[0]!.name, 'carol');
  });

  test('flag beats env beats config.json beats the default', () => {
    const h = tempHome();
    try {
      assert.equal(new Context({ home: h.dir }, {}).nodeUrl, DEFAULT_NODE);
      writeFileSync(
        join(h.dir, 'config.json'),
        JSON.stringify({ node: 'http://10.0.0.1:1', output: 'json' }),
      );
      assert.equal(new Context({ home: h.dir }, {}).nodeUrl, 'http://10.0.0.1:1');
      assert.equal(new Context({ home: h.dir }, {}).output, 'json');
      const env = { UNC_NODE: 'http://10.0.0.2:2', UNC_OUTPUT: 'text', UNC_HOME: '/nonexistent' };
      assert.equal(new Context({ home: h.dir }, env).nodeUrl, 'http://10.0.0.2:2');
      assert.equal(new Context({ home: h.dir }, env).output, 'text');
      assert.equal(
        new Context({ home: h.dir, node: 'http://10.0.0.3:3', output: 'json' }, env).nodeUrl,
        'http://10.0.0.3:3',
      );
      assert.equal(new Context({}, { UNC_HOME: h.dir }).home, h.dir);
      throwsWith(() => new Context({ home: h.dir }, { UNC_OUTPUT: 'yaml' }), 'BAD_OUTPUT');
    } finally {
      h.cleanup();
    }
  });

  test('unc config set|get|unset checks values and keeps what the node recorded', async () => {
    writeFileSync(
      join(home.dir, 'config.json'),
      JSON.stringify({ miner: 'http://127.0.0.1:9', rpc: { maxBatchSize: 5 } }),
    );
    const set = await runUnc(['config', 'set', 'node', 'http://10.1.2.3:3030/', '--home', home.dir]);
    assert.equal(set.code, 0, set.stderr);
    const got = await runUnc(['--home', home.dir, 'config', 'get', 'node']);
    assert.equal(got.stdout.trim(), 'http://10.1.2.3:3030');
    const bad = await runUnc(['config', 'set', 'node', 'ftp://x', '--home', home.dir]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid node URL/);
    const unknown = await runUnc(['config', 'set', 'colour', 'red', '--home', home.dir]);
    assert.match(unknown.stderr, /unknown setting "colour": one of node, output, explorer/);
    // Names every object inherits are settings neither to set nor to read.
    for (const key of ['toString', 'constructor', '__proto__']) {
      const inherited = await runUnc(['config', 'set', key, 'http://x:1', '--home', home.dir]);
      assert.equal(inherited.code, 1);
      assert.match(inherited.stderr, new RegExp(`unknown setting "${key}"`));
      const read = await runUnc(['config', 'get', key, '--home', home.dir]);
      assert.equal(read.code, 1, `config get ${key}: ${read.stdout}`);
      assert.match(read.stderr, /not set/);
    }
    const file = JSON.parse(readFileSync(join(home.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(file, {
      miner: 'http://127.0.0.1:9',
      rpc: { maxBatchSize: 5 },
      node: 'http://10.1.2.3:3030',
    });
    assert.equal((await runUnc(['config', 'unset', 'node', '--home', home.dir])).code, 0);
    assert.match((await runUnc(['config', 'get', 'node', '--home', home.dir])).stderr, /not set/);
  });

  test('unc vendor register refuses a --power the chain would refuse (BAD_POWER past MAX_MODEL_POWER) before signing', async () => {
    const args = (power: string) => [
      'vendor',
      'register',
      '--ca',
      join(home.dir, 'no-such-ca'),
      '--from',
      'gov',
      '--model',
      'm',
      '--power',
      power,
      '--node',
      'http://127.0.0.1:9',
      '--home',
      home.dir,
    ];
    for (const power of ['0', (MAX_MODEL_POWER + 1n).toString(), '1'.padEnd(30, '0')]) {
      const r = await runUnc(args(power));
      assert.equal(r.code, 1, power);
      assert.match(r.stderr, new RegExp(`--power must be an integer 1…${MAX_MODEL_POWER}`), power);
    }
    // At the bound the power passes this check (and the run goes on, here to the missing CA).
    const atBound = await runUnc(args(MAX_MODEL_POWER.toString()));
    assert.equal(atBound.code, 1);
    assert.doesNotMatch(atBound.stderr, /--power/);
  });

  test('unc vendor set-model refuses a power the chain would refuse (BAD_POWER) before anything is signed', async () => {
    const args = (power: string) => [
      'vendor',
      'set-model',
      '--vendor',
      'acme',
      '--model',
      'h100',
      '--power',
      power,
      '--from',
      'gov',
      '--node',
      'http://127.0.0.1:9',
      '--home',
      home.dir,
    ];
    for (const power of ['0', (MAX_MODEL_POWER + 1n).toString(), '1e6']) {
      const r = await runUnc(args(power));
      assert.equal(r.code, 1);
      assert.match(r.stderr, /--power must be an integer/);
    }
  });

  /** `unc vendor revoke` of `serial` by CA `ca` (default: one that does not exist), no node behind. */
  const revokeArgs = (serial: string, ca = join(home.dir, 'no-such-ca')) => [
    'vendor',
    'revoke',
    '--ca',
    ca,
    '--serial',
    serial,
    '--from',
    'gov',
    '--node',
    'http://127.0.0.1:9',
    '--home',
    home.dir,
  ];

  test('unc vendor revoke refuses a serial longer than 20 octets (the chain would refuse it BAD_SERIAL) before touching the CA', async () => {
    const long = await runUnc(revokeArgs('1'.padEnd(42, '0')));
    assert.equal(long.code, 1);
    assert.match(long.stderr, /invalid serial/);
    // 20 octets pass this check (and the run goes on, here to the missing CA).
    const atBound = await runUnc(revokeArgs('1'.padEnd(40, '0')));
    assert.equal(atBound.code, 1);
    assert.doesNotMatch(atBound.stderr, /invalid serial/);
  });

  test('unc vendor revoke refuses a serial with whitespace around or inside it, before touching the CA', async () => {
    // Core's normalizeSerialHex trims; the command does not: a serial pasted with a stray space or
    // newline is refused, as it always was, not silently read as another string.
    const padded = [' 1a2b', '1a2b ', '\t1a2b', '1a2b\n', ' 0x1a2b', '0x 1a2b', '1a 2b'];
    const runs = await Promise.all([...padded, '0X001A2B'].map((serial) => runUnc(revokeArgs(serial))));
    for (const [i, r] of runs.entries()) {
      assert.equal(r.code, 1);
      if (i < padded.length) assert.match(r.stderr, /invalid serial/, JSON.stringify(padded[i]));
      // The same serial without the whitespace passes this check (and goes on to the missing CA).
      else assert.doesNotMatch(r.stderr, /invalid serial/);
    }
  });

  test("attack: unc vendor revoke refuses the intermediate's own serial (its id on chain would match no certificate) before touching the CA's list", async () => {
    const caDir = join(home.dir, 'revoke-own-ca');
    const created = await runUnc(['vendor', 'ca', 'create', '--vendor-id', 'own-serial', '--out', caDir]);
    assert.equal(created.code, 0, created.stderr);
    const [der] = pemToDer(readFileSync(join(caDir, 'intermediate.cert.pem'), 'utf8'));
    const own = parseCertificate(der!).serialHex;
    const listBefore = existsSync(join(caDir, 'revocations.pem'))
      ? readFileSync(join(caDir, 'revocations.pem'), 'utf8')
      : null;
    const r = await runUnc(revokeArgs(`0x00${own.toUpperCase()}`, caDir));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /intermediate certificate itself/);
    const listAfter = existsSync(join(caDir, 'revocations.pem'))
      ? readFileSync(join(caDir, 'revocations.pem'), 'utf8')
      : null;
    assert.equal(listAfter, listBefore);
  });

  test('unc --help documents every UNC_ variable the code reads', async () => {
    const help = (await runUnc(['--help'])).stdout;
    const root = new URL('../../../../', import.meta.url).pathname;
    const read = new Set<string>();
    for (const pkg of readdirSync(join(root, 'packages'))) {
      const walk = (dir: string) => {
        if (!existsSync(dir)) return;
        for (const name of readdirSync(dir, { withFileTypes: true })) {
          const path = join(dir, name.name);
          if (name.isDirectory()) walk(path);
          else if (/\.tsx?$/.test(name.name))
            for (const m of readFileSync(path, 'utf8').matchAll(/env\.(UNC_[A-Z_]+)/g)) read.add(m[1]!);
        }
      };
      walk(join(root, 'packages', pkg, 'src'));
    }
    assert.ok(read.size >= 5, [...read].join());
    for (const name of read)
      assert.match(help, new RegExp(`\\b${name}\\b`), `${name} missing from unc --help`);
  });

  test('one version: every workspace package and unc --version agree', async () => {
    const root = new URL('../../../../', import.meta.url).pathname;
    for (const pkg of readdirSync(join(root, 'packages'))) {
      const json = JSON.parse(readFileSync(join(root, 'packages', pkg, 'package.json'), 'utf8')) as {
        version: string;
      };
      assert.equal(json.version, CLI_VERSION, pkg);
    }
    assert.equal((await runUnc(['--version'])).stdout.trim(), CLI_VERSION);
  });
});

describe('consensus settings in config.json', () => {
  test('consensus.paceHeights is true or false; anything else is a clear BAD_CONFIG', () => {
    assert.deepEqual(consensusOptionsOf({}, 'c.json'), {});
    assert.deepEqual(consensusOptionsOf({ consensus: {} }, 'c.json'), {});
    assert.deepEqual(consensusOptionsOf({ consensus: { paceHeights: false } }, 'c.json'), {
      paceHeights: false,
    });
    assert.deepEqual(consensusOptionsOf({ consensus: { paceHeights: true } }, 'c.json'), {
      paceHeights: true,
    });
    for (const bad of ['off', 0, 1, null, 'false'])
      throwsWith(() => consensusOptionsOf({ consensus: { paceHeights: bad } }, 'c.json'), 'BAD_CONFIG');
    for (const bad of [null, 'off', false, [true]])
      throwsWith(() => consensusOptionsOf({ consensus: bad }, 'c.json'), 'BAD_CONFIG');
    // A misspelt key is refused, not silently ignored (pacing would stay on unnoticed).
    assert.throws(
      () => consensusOptionsOf({ consensus: { paceHeight: false } }, 'c.json'),
      /unknown setting "consensus.paceHeight"/,
    );
  });

  test('every consensus key is known to the one parser: the write limit and pacing together', () => {
    // Two parsers of the same object, each refusing the other's key, made any config.json with
    // both unusable (and one with the write limit refused by `unc start`).
    assert.deepEqual(
      consensusOptionsOf({ consensus: { paceHeights: false, blockWriteTimeoutMs: 90_000 } }, 'c.json'),
      { paceHeights: false, blockWriteTimeoutMs: 90_000 },
    );
    throwsWith(() => consensusOptionsOf({ consensus: { blockWriteTimeoutMs: 0 } }, 'c.json'), 'BAD_CONFIG');
  });
});

describe('key names where an address goes', () => {
  const home = tempHome();
  after(() => home.cleanup());
  const keyring = new Keyring(home.dir);
  const bob = keyring.addTest('bob', devKey(1).seed, 'unc-dev-1');

  test('a key name becomes its address; an address stays; anything else is a clear error', () => {
    assert.equal(resolveAddress('bob', keyring), bob.address);
    assert.equal(resolveAddress(bob.address, keyring), bob.address);
    throwsWith(() => resolveAddress('nobody', keyring), 'BAD_ADDRESS');
    throwsWith(() => resolveAddress('../etc', keyring), 'BAD_ADDRESS');
    // An unc1… text is always read as an address, never looked up as a name.
    assert.throws(() => resolveAddress('unc1bob', keyring));
  });
});

describe('id prefixes', () => {
  const ids = ['ab12cd'.padEnd(64, '0'), 'ab12ce'.padEnd(64, '1'), 'ff'.padEnd(64, '2')];

  test('a whole id, with 0x or the "…" the text output prints, or a prefix', () => {
    assert.deepEqual(parseId(`0x${ids[2]!.toUpperCase()}`, 'chip'), { id: ids[2] });
    assert.deepEqual(parseId('ab12cdef00000000…', 'lease'), { prefix: 'ab12cdef00000000' });
    throwsWith(() => parseId('ab12', 'offer'), 'BAD_ID');
    throwsWith(() => parseId('zz12cd', 'offer'), 'BAD_ID');
  });

  test('unique → the id; none → NOT_FOUND; several → AMBIGUOUS_ID listing them', () => {
    assert.equal(pickByPrefix('ab12cd', ids, 'offer', 'x'), ids[0]);
    throwsWith(() => pickByPrefix('ab12c0', ids, 'offer', 'x'), 'NOT_FOUND');
    try {
      pickByPrefix('ab12c', ids, 'lease', 'x');
      assert.fail('ambiguous prefix accepted');
    } catch (err) {
      assert.equal((err as UncError).code, 'AMBIGUOUS_ID');
      assert.match((err as Error).message, new RegExp(`${ids[0]}[\\s\\S]*${ids[1]}`));
    }
  });

  test('property: a prefix resolves exactly when one candidate starts with it, and to that one', () => {
    const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
    fc.assert(
      fc.property(
        fc.uniqueArray(hex64, { minLength: 1, maxLength: 12 }),
        fc.nat(),
        fc.integer({ min: MIN_PREFIX, max: 63 }),
        (all, i, len) => {
          const prefix = all[i % all.length]!.slice(0, len);
          const matching = all.filter((c) => c.startsWith(prefix));
          if (matching.length === 1) assert.equal(pickByPrefix(prefix, all, 'chip', 'x'), matching[0]);
          else throwsWith(() => pickByPrefix(prefix, all, 'chip', 'x'), 'AMBIGUOUS_ID');
        },
      ),
    );
  });
});

describe('chip prefixes over every chip', () => {
  test('property: the page after chipCursorBefore(prefix) starts with every id the prefix names', () => {
    const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
    fc.assert(
      fc.property(
        fc.uniqueArray(hex64, { minLength: 1, maxLength: 40 }),
        fc.nat(),
        fc.integer({ min: MIN_PREFIX, max: 63 }),
        (all, i, len) => {
          const prefix = all[i % all.length]!.slice(0, len);
          const cursor = chipCursorBefore(prefix);
          // What unc_listChips returns after the cursor, in id order.
          const after = [...all].sort().filter((id) => cursor === null || id > cursor);
          const matching = all.filter((id) => id.startsWith(prefix)).sort();
          assert.deepEqual(after.slice(0, matching.length), matching);
        },
      ),
    );
    assert.equal(chipCursorBefore('000000'), null);
    assert.equal(chipCursorBefore('000001'), `000000${'f'.repeat(58)}`);
  });
});

describe('the confirmation policy', () => {
  const lines = confirmationLines({
    summary: ['Transfer 12.5 UNC to unc1…'],
    from: 'dev0',
    address: 'unc1x',
    fee: 2n * 10n ** 15n,
    spend: 125n * 10n ** 17n,
    chainId: 'unc-dev-1',
    node: 'http://127.0.0.1:3030',
  });

  test('shows amounts in UNC, the fee, the chain id and the node', () => {
    const text = lines.join('\n');
    assert.match(text, /fee +0\.002 UNC/);
    assert.match(text, /total +12\.502 UNC/);
    assert.match(text, /chain +unc-dev-1/);
    assert.match(text, /node +http:\/\/127\.0\.0\.1:3030/);
    assert.doesNotMatch(text, /\d{10,}/, 'no base units');
  });

  test('-y skips; no terminal without -y is an error at once; anything but yes cancels', async () => {
    let asked = 0;
    const ask = async (answer: string) => {
      asked++;
      return answer;
    };
    await confirm(lines, { yes: true, interactive: false, ask: () => ask('n') });
    await rejectsWith(
      confirm(lines, { yes: false, interactive: false, ask: () => ask('y') }),
      'CONFIRMATION_REQUIRED',
    );
    assert.equal(asked, 0);
    const stderr = process.stderr.write;
    process.stderr.write = () => true;
    try {
      await rejectsWith(confirm(lines, { yes: false, interactive: true, ask: () => ask('') }), 'CANCELLED');
      await rejectsWith(
        confirm(lines, { yes: false, interactive: true, ask: () => ask('yep') }),
        'CANCELLED',
      );
      await confirm(lines, { yes: false, interactive: true, ask: () => ask('Yes') });
    } finally {
      process.stderr.write = stderr;
    }
    assert.equal(asked, 3);
  });

  test('-y accepts a fee up to 1 UNC unseen; above it (the node sets the rates) a human must confirm', async () => {
    const ask = async () => 'y';
    await confirm(lines, { yes: true, interactive: false, ask, fee: ONE_UNC });
    await rejectsWith(
      confirm(lines, { yes: true, interactive: false, ask, fee: ONE_UNC + 1n }),
      'FEE_NEEDS_CONFIRMATION',
    );
    // A human who sees the fee may still agree to it.
    const stderr = process.stderr.write;
    process.stderr.write = () => true;
    try {
      await confirm(lines, { yes: false, interactive: true, ask, fee: 1000n * ONE_UNC });
    } finally {
      process.stderr.write = stderr;
    }
  });
});

describe('pre-flight checks', () => {
  test('the balance must cover what leaves it and the fee; the message is in UNC', () => {
    checkBalance({ from: 'a', balance: 10n * ONE_UNC, spend: 9n * ONE_UNC, fee: ONE_UNC });
    assert.throws(
      () => checkBalance({ from: 'a', balance: 10n * ONE_UNC, spend: 9n * ONE_UNC, fee: ONE_UNC + 1n }),
      /a holds 10 UNC but this needs 10\.000000000000000001 UNC \(9 UNC \+ fee 1\.000000000000000001 UNC\)/,
    );
  });

  const offer = (patch: Partial<OfferJson> = {}): OfferJson =>
    ({
      id: 'aa'.repeat(32),
      status: 'open',
      price: (2n * ONE_UNC).toString(),
      minHours: 1,
      maxHours: 24,
      available: 1,
      chips: [
        { chipId: 'c1'.repeat(32), available: true, leaseId: null },
        { chipId: 'c2'.repeat(32), available: false, leaseId: 'dd'.repeat(32) },
      ],
      ...patch,
    }) as unknown as OfferJson;

  test('a lease: the chain rules on open offer, hours, chip and deposit, before anything is signed', () => {
    assert.equal(checkLease(offer(), 3, undefined, undefined), 6n * ONE_UNC);
    assert.equal(checkLease(offer({ minHours: 0 }), 3, undefined, ONE_UNC / 100n), ONE_UNC / 100n);
    assert.equal(checkLease(offer(), 3, 'c2'.repeat(32), 3n * ONE_UNC), 3n * ONE_UNC);
    throwsWith(
      () => checkLease(offer({ status: 'closing' } as Partial<OfferJson>), 3, undefined, undefined),
      'OFFER_CLOSED',
    );
    throwsWith(() => checkLease(offer(), 25, undefined, undefined), 'BAD_DURATION');
    throwsWith(() => checkLease(offer({ minHours: 0 }), 0, undefined, undefined), 'BAD_DURATION');
    throwsWith(() => checkLease(offer(), 2, 'ee'.repeat(32), undefined), 'CHIP_NOT_OFFERED');
    throwsWith(() => checkLease(offer({ minHours: 2 }), 2, undefined, ONE_UNC), 'DEPOSIT_TOO_LOW');
  });
});

describe('keys delete, rename, export and import', () => {
  const home = tempHome();
  after(() => home.cleanup());
  const pw = join(home.dir, 'pw');
  const unc = (...args: string[]) => runUnc([...args, '--home', home.dir]);

  test('export → import elsewhere gives the same address with a warning when the key is already held; rename; delete asks', async () => {
    writeFileSync(pw, 'correct horse battery\n', { mode: 0o600 });
    const add = await unc('keys', 'add', 'alice', '--password-file', pw, '-o', 'json');
    assert.equal(add.code, 0, add.stderr);
    const alice = JSON.parse(add.stdout) as { address: string };
    const file = join(home.dir, 'alice.keystore.json');
    const exported = await unc('keys', 'export', 'alice', '--out', file);
    assert.equal(exported.code, 0, exported.stderr);
    assert.doesNotMatch(readFileSync(file, 'utf8'), /mnemonic|secret/);
    assert.equal((await unc('keys', 'export', 'alice', '--out', file)).code, 1, 'never overwrites');
    // A dangling link planted where the export goes (a shared directory): existsSync says "no
    // file", and a plain write would follow the link and create the file it points at.
    const target = join(home.dir, 'planted-target');
    const link = join(home.dir, 'planted-link');
    symlinkSync(target, link);
    const planted = await unc('keys', 'export', 'alice', '--out', link);
    assert.equal(planted.code, 1, 'a link is never written through');
    assert.match(planted.stderr, /exists/);
    assert.equal(existsSync(target), false, 'nothing created where the link points');

    const again = await unc(
      'keys',
      'import',
      'alice2',
      '--keystore',
      file,
      '--password-file',
      pw,
      '-o',
      'json',
    );
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { address: string }).address, alice.address);
    assert.match(again.stderr, /warning: .* is already in the keyring as "alice"/);
    const wrong = join(home.dir, 'wrong');
    writeFileSync(wrong, 'not the password\n', { mode: 0o600 });
    assert.equal(
      (await unc('keys', 'import', 'alice3', '--keystore', file, '--password-file', wrong)).code,
      1,
    );

    assert.equal((await unc('keys', 'rename', 'alice2', 'alice')).code, 1, 'the new name is taken');
    const renamed = await unc('keys', 'rename', 'alice2', 'spare');
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.equal(new Keyring(home.dir).info('spare').address, alice.address);
    assert.equal(new Keyring(home.dir).has('alice2'), false);

    const refused = await unc('keys', 'delete', 'spare');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /CONFIRMATION_REQUIRED|-y/);
    assert.equal(new Keyring(home.dir).has('spare'), true, 'nothing deleted without consent');
    assert.equal((await unc('keys', 'delete', 'spare', '-y')).code, 0);
    assert.equal(new Keyring(home.dir).has('spare'), false);
  });
});

describe("dev keys beside the user's own", () => {
  test("unc dev's dev keys never replace an encrypted key of the same name; they replace their own kind", () => {
    const home = tempHome();
    try {
      const keyring = new Keyring(home.dir);
      // `unc dev` writes dev0…dev9 and governance at every start, into the home every command
      // shares by default: a user's own "governance" key there was overwritten, its seed lost.
      const mine = keyring.addEncrypted('governance', new Uint8Array(32).fill(7), 'correct horse battery');
      throwsWith(() => keyring.addTest('governance', devKey(1).seed, 'unc-dev-1'), 'KEY_EXISTS');
      assert.equal(keyring.info('governance').address, mine.address);
      assert.equal(keyring.info('governance').kind, 'encrypted');
      // A dev key of an earlier dev chain is replaced, bound to the new chain id.
      keyring.addTest('dev1', devKey(1).seed, 'unc-dev-1');
      keyring.addTest('dev1', devKey(1).seed, 'unc-dev-2');
      assert.deepEqual(keyring.unlock('dev1', 'unc-dev-2'), devKey(1).seed);
    } finally {
      home.cleanup();
    }
  });
});

describe('shell completion', () => {
  test('bash completes subcommands and options at every depth, generated from the command tree', async () => {
    const script = (await runUnc(['completion', 'bash'])).stdout;
    const complete = (words: string[]) =>
      execFileSync(
        'bash',
        [
          '-c',
          `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _unc; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: 'utf8' },
      ).trim();
    assert.match(complete(['unc', 'mar']), /^market$/);
    assert.deepEqual(
      complete(['unc', '--home', 'x', 'market', 'lease', '']).split(' ').includes('topup'),
      true,
    );
    assert.match(complete(['unc', 'tx', 'transfer', '--am']), /--amount/);
    assert.match(complete(['unc', 'status', '--n']), /--node/);
  });

  test('zsh and fish complete the same way (run where the shell is installed); an unknown shell is an error', async () => {
    const zsh = (await runUnc(['completion', 'zsh'])).stdout;
    assert.match(zsh, /bashcompinit[\s\S]*complete -o default -F _unc unc/);
    const fish = (await runUnc(['completion', 'fish'])).stdout;
    assert.match(fish, /complete -c unc -n 'test \(__unc_path\) = "market lease"' -f -a 'show close topup'/);
    const has = (shell: string) => existsSync(`/usr/bin/${shell}`) || existsSync(`/bin/${shell}`);
    if (has('zsh')) {
      // As bashcompinit calls it: zsh's 1-based words, COMP_CWORD = CURRENT - 1.
      const out = execFileSync(
        'zsh',
        [
          '-c',
          `${zsh}\nCOMP_WORDS=(unc --home x market lease ''); COMP_CWORD=5; _unc; echo "\${COMPREPLY[*]}"`,
        ],
        { encoding: 'utf8' },
      );
      assert.match(out, /^show close topup /);
    }
    if (has('fish')) {
      const out = execFileSync('fish', ['-c', `${fish}\ncomplete -C "unc --home x market lease "`], {
        encoding: 'utf8',
      });
      assert.deepEqual(out.trim().split('\n').sort(), ['close', 'show', 'topup']);
    }
    const bad = await runUnc(['completion', 'tcsh']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /one of bash, zsh, fish/);
  });
});

describe('unc dev hints', () => {
  test('carry the --home and --node it runs with, unless they are the defaults', () => {
    const hints = devHints('unc1x', '/tmp/h', 'http://127.0.0.1:4567').join('\n');
    assert.match(hints, /npx unc --home \/tmp\/h --node http:\/\/127\.0\.0\.1:4567 status/);
    assert.doesNotMatch(
      devHints('unc1x', new Context({}, {}).home, DEFAULT_NODE).join('\n'),
      /--home|--node/,
    );
  });
});
