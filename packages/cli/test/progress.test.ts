import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { renderProgress } from '../src/progress.js';

describe('progress bar', () => {
  test('renders the fraction, the counts and the ETA', () => {
    assert.equal(
      renderProgress('syncing', 1220, 2000, 14, 10),
      'syncing [██████░░░░]  61% 1,220/2,000 ETA 14s',
    );
    assert.equal(renderProgress('syncing', 0, 0, null, 4), 'syncing [░░░░]   0% 0/0 ETA ?');
    assert.equal(renderProgress('s', 5, 4, 3725, 4), 's [████] 100% 5/4 ETA 1h02m');
    assert.equal(renderProgress('s', 1, 4, 61.2, 4), 's [█░░░]  25% 1/4 ETA 1m02s');
  });
});
