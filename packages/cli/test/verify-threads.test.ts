/**
 * The node's signature-check worker threads as an operator sets them (verify-options.ts): the flag
 * beats UNC_VERIFY_THREADS, which beats config.json `verify.threads`, which beats the node's
 * default (a thread per core, at most 16); every value given is checked, used or not, and a bad
 * one is refused saying where it came from, before anything is changed.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { UncError } from '@unc/core';
import { devGenesisJson } from '@unc/node';
import fc from 'fast-check';
import { verifyThreadsOf } from '../src/verify-options.js';
import { runUnc, startDev, tempHome } from './helpers.js';

const homes: { cleanup: () => void }[] = [];
after(() => {
  for (const h of homes) h.cleanup();
});

describe('verify threads: where the setting comes from', () => {
  test('flag, then UNC_VERIFY_THREADS, then config.json, then the default', () => {
    const path = '/h/config.json';
    assert.equal(verifyThreadsOf({}, {}, {}, path), undefined);
    assert.equal(verifyThreadsOf({}, {}, { verify: { threads: 2 } }, path), 2);
    assert.equal(verifyThreadsOf({}, { UNC_VERIFY_THREADS: '5' }, { verify: { threads: 2 } }, path), 5);
    assert.equal(
      verifyThreadsOf({ verifyThreads: '3' }, { UNC_VERIFY_THREADS: '5' }, { verify: { threads: 2 } }, path),
      3,
    );
    // An empty variable is no setting (as UNC_HOME and UNC_NODE).
    assert.equal(verifyThreadsOf({}, { UNC_VERIFY_THREADS: '' }, {}, path), undefined);
    fc.assert(
      fc.property(
        fc.option(fc.integer({ min: 1, max: 256 }), { nil: undefined }),
        fc.option(fc.integer({ min: 1, max: 256 }), { nil: undefined }),
        fc.option(fc.integer({ min: 1, max: 256 }), { nil: undefined }),
        (flag, env, config) => {
          const got = verifyThreadsOf(
            flag === undefined ? {} : { verifyThreads: String(flag) },
            env === undefined ? {} : { UNC_VERIFY_THREADS: String(env) },
            config === undefined ? {} : { verify: { threads: config } },
            path,
          );
          assert.equal(got, flag ?? env ?? config);
        },
      ),
    );
  });

  test('a bad value anywhere is refused, naming its source', () => {
    const path = '/h/config.json';
    const refused = (fn: () => unknown, code: string, re: RegExp) =>
      assert.throws(fn, (e: Error) => e instanceof UncError && e.code === code && re.test(e.message));
    refused(
      () => verifyThreadsOf({ verifyThreads: '0' }, {}, {}, path),
      'BAD_ARGUMENT',
      /--verify-threads must be/,
    );
    refused(
      () => verifyThreadsOf({ verifyThreads: 'many' }, {}, {}, path),
      'BAD_ARGUMENT',
      /--verify-threads/,
    );
    refused(
      () => verifyThreadsOf({}, { UNC_VERIFY_THREADS: '300' }, {}, path),
      'BAD_ARGUMENT',
      /UNC_VERIFY_THREADS must be .* 1 to 256/,
    );
    refused(
      () => verifyThreadsOf({ verifyThreads: '4' }, {}, { verify: { threads: -1 } }, path),
      'BAD_CONFIG',
      /^\/h\/config\.json: verify\.threads must be/,
    );
    refused(() => verifyThreadsOf({}, {}, { verify: 'all' }, path), 'BAD_CONFIG', /verify must be an object/);
    refused(
      () => verifyThreadsOf({ verifyThreads: '4' }, { UNC_VERIFY_THREADS: 'x' }, {}, path),
      'BAD_ARGUMENT',
      /UNC_VERIFY_THREADS/,
    );
  });
});

describe('verify threads: the real commands', () => {
  test('unc dev gives its node the threads asked for (flag over UNC_VERIFY_THREADS over config.json)', async () => {
    const home = tempHome();
    homes.push(home);
    mkdirSync(home.dir, { recursive: true });
    writeFileSync(join(home.dir, 'config.json'), JSON.stringify({ verify: { threads: 2 } }));
    const saved = process.env.UNC_VERIFY_THREADS;
    process.env.UNC_VERIFY_THREADS = '3';
    try {
      for (const [extra, threads] of [
        [['--verify-threads', '1'], 1],
        [[], 3],
      ] as const) {
        const dev = await startDev(home.dir, ['--chips', '0', ...extra], { firstBlock: false });
        try {
          assert.match(dev.output(), new RegExp(`Verify\\s+${threads} signature-check threads`));
        } finally {
          assert.equal(await dev.stop(), 0);
        }
      }
      delete process.env.UNC_VERIFY_THREADS;
      const dev = await startDev(home.dir, ['--chips', '0'], { firstBlock: false });
      try {
        assert.match(dev.output(), /Verify\s+2 signature-check threads/);
      } finally {
        assert.equal(await dev.stop(), 0);
      }
    } finally {
      if (saved === undefined) delete process.env.UNC_VERIFY_THREADS;
      else process.env.UNC_VERIFY_THREADS = saved;
    }
  });

  test('unc dev --reset with a bad --verify-threads is refused before the chain is reset', async () => {
    const home = tempHome();
    homes.push(home);
    const marker = join(home.dir, 'data', 'kept');
    mkdirSync(join(home.dir, 'data'), { recursive: true });
    writeFileSync(marker, 'the chain');
    const run = await runUnc(['dev', '--home', home.dir, '--reset', '--verify-threads', '0']);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /--verify-threads must be a whole number of signature-check threads from 1 to 256, not "0"/,
    );
    assert.ok(existsSync(marker), '--reset ran');
  });

  test('unc start refuses a bad config.json verify.threads with BAD_CONFIG before starting', async () => {
    const home = tempHome();
    homes.push(home);
    const init = await runUnc(['init', '--home', home.dir]);
    assert.equal(init.code, 0, init.stderr);
    writeFileSync(join(home.dir, 'config.json'), JSON.stringify({ verify: { threads: 1000 } }));
    const genesis = join(home.dir, 'genesis.json');
    writeFileSync(genesis, JSON.stringify(devGenesisJson({ blockTimeMs: 1000, epochBlocks: 60 })));
    const run = await runUnc([
      'start',
      '--home',
      home.dir,
      '--genesis',
      genesis,
      '--p2p-port',
      '0',
      '--rpc-port',
      '0',
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /config\.json: verify\.threads must be a whole number .* not 1000 \[BAD_CONFIG\]/,
    );
    // The data folder itself is made (0700) before anything is read: the chain was not opened.
    assert.ok(!existsSync(join(home.dir, 'data', 'chain')), 'the node was started');
  });
});
