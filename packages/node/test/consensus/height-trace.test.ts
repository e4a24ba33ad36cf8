import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HeightTrace, MAX_TRACE_STAGES } from '../../src/consensus/height-trace.js';

describe('HeightTrace', () => {
  test('stages in the order they happened, in ms from the start, the first of each kept', () => {
    const trace = new HeightTrace(7n, 1000);
    trace.mark('built', 1100, { txs: 5 });
    trace.mark('start', 1000);
    trace.mark('built', 1900);
    assert.deepEqual(trace.fields(), { height: 7n, start: 0, built: 100, 'built.txs': 5 });
    assert.equal(trace.at('built'), 100);
  });

  test('proposals signed for a million rounds keep the trace bounded (it grows without the bound)', () => {
    // Any validator may sign a proposal for any round of the height; each round names a stage.
    const trace = new HeightTrace(7n, 0);
    for (let round = 0; round < 100_000; round++) {
      trace.mark(`arrived@r${round}`, round, { txs: 1, missing: 0 });
      trace.mark(`rebuilt@r${round}`, round, { txs: 1, missing: 0 });
    }
    const fields = trace.fields();
    const stages = Object.keys(fields).filter((k) => k !== 'height' && k !== 'dropped' && !k.includes('.'));
    assert.equal(stages.length, MAX_TRACE_STAGES);
    assert.ok(Object.keys(fields).length <= 1 + 3 * MAX_TRACE_STAGES + 1);
    assert.equal(fields.dropped, 200_000 - MAX_TRACE_STAGES);
  });
});
