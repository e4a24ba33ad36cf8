/**
 * bench:jobs's command line: a misspelt option ran the bench with its default (the figures then
 * measured something other than what was asked), and `--provider-concurrency` took any positive
 * integer (a slip of a digit forked hundreds of job processes, each loading ONNX Runtime).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jobsBenchArgsError, providerConcurrencyOf } from '../bench/jobs-args.js';

describe('bench:jobs arguments', () => {
  test('known options run; unknown, misspelt or valueless ones are refused with the reason', () => {
    assert.equal(jobsBenchArgsError([]), null);
    assert.equal(
      jobsBenchArgsError([
        '--jobs',
        '40',
        '--parallel',
        '4',
        '--only',
        'ocr',
        '--paired',
        '--provider-concurrency',
        '2',
      ]),
      null,
    );
    assert.equal(jobsBenchArgsError(['--provider-concurency', '2']), 'unknown option --provider-concurency');
    assert.equal(jobsBenchArgsError(['--provider-concurrency']), '--provider-concurrency needs a value');
    assert.equal(
      jobsBenchArgsError(['--provider-concurrency', '--paired']),
      '--provider-concurrency needs a value',
    );
    assert.equal(jobsBenchArgsError(['4']), 'unexpected argument "4"');
  });

  test('--provider-concurrency: 1…64, by default the requests in flight up to the cores', () => {
    assert.equal(providerConcurrencyOf([], 4, 2), 2);
    assert.equal(providerConcurrencyOf([], 1, 16), 1);
    assert.equal(providerConcurrencyOf(['--provider-concurrency', '4'], 4, 2), 4);
    assert.equal(providerConcurrencyOf(['--provider-concurrency', '64'], 4, 2), 64);
    for (const bad of ['0', '-1', '2.5', 'four', '65', '1e9', ''])
      assert.throws(
        () => providerConcurrencyOf(['--provider-concurrency', bad], 4, 2),
        /--provider-concurrency must be an integer 1…64/,
        bad,
      );
  });
});
