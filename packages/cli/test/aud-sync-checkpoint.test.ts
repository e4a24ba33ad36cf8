// The weak-subjectivity checkpoint's flag and config key (docs/operators.md): parsed strictly, a
// bad one refused with a clear error rather than ignored (an ignored checkpoint protects nothing).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { trustedCheckpointOf } from '../src/commands/start.js';

const HASH = 'ab'.repeat(32);

describe('trusted checkpoint option', () => {
  test('the flag wins over config; both parse HEIGHT:HASH', () => {
    const cp = trustedCheckpointOf(
      `12:${HASH}`,
      { sync: { trustedCheckpoint: `7:${'cd'.repeat(32)}` } },
      'c',
    );
    assert.equal(cp?.height, 12n);
    assert.equal(Buffer.from(cp!.hash).toString('hex'), HASH);
    assert.equal(
      trustedCheckpointOf(undefined, { sync: { trustedCheckpoint: `7:${HASH}` } }, 'c')?.height,
      7n,
    );
    assert.equal(trustedCheckpointOf(undefined, {}, 'c'), undefined);
  });

  test('a malformed checkpoint or sync section is refused', () => {
    for (const bad of ['12', `0:${HASH}`, `x:${HASH}`, `12:${HASH.slice(2)}`, `12:${HASH}00`])
      assert.throws(() => trustedCheckpointOf(bad, {}, 'c'), { code: 'BAD_CHECKPOINT' });
    for (const sync of [[], 'x', { trustedCheckpoint: 12 }, { trustedCheckpiont: `1:${HASH}` }])
      assert.throws(() => trustedCheckpointOf(undefined, { sync }, 'c'), { code: 'BAD_CONFIG' });
    // Named as the config's own path: `sync`, `sync.trustedCheckpiont` (it read "sync. must be").
    assert.throws(() => trustedCheckpointOf(undefined, { sync: 'x' }, 'c'), {
      message: 'c: sync must be an object',
    });
    assert.throws(() => trustedCheckpointOf(undefined, { sync: { trustedCheckpiont: 1 } }, 'c'), {
      message: 'c: sync.trustedCheckpiont is not a setting',
    });
  });
});
