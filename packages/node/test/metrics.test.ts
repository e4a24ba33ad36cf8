import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROMETHEUS_CONTENT_TYPE, Registry } from '../src/metrics.js';

describe('metrics registry', () => {
  it('renders an untouched counter and gauge as zero, with HELP and TYPE lines', () => {
    const r = new Registry();
    r.counter('unc_blocks_total', 'Blocks committed.');
    r.gauge('unc_mempool_txs', 'Transactions waiting in the mempool.');
    assert.equal(
      r.render(),
      [
        '# HELP unc_blocks_total Blocks committed.',
        '# TYPE unc_blocks_total counter',
        'unc_blocks_total 0',
        '# HELP unc_mempool_txs Transactions waiting in the mempool.',
        '# TYPE unc_mempool_txs gauge',
        'unc_mempool_txs 0',
        '',
      ].join('\n'),
    );
  });

  it('renders an empty registry as an empty document', () => {
    assert.equal(new Registry().render(), '');
  });

  it('tracks counter and gauge series per label set, independent of key order', () => {
    const r = new Registry();
    const c = r.counter('unc_rpc_requests_total', 'RPC requests.');
    c.inc(1, { method: 'unc_getBlock', transport: 'http' });
    c.inc(2, { transport: 'http', method: 'unc_getBlock' });
    c.inc(1, { method: 'unc_sendTx', transport: 'ws' });
    const g = r.gauge('unc_peers', 'Connected peers.');
    g.set(5);
    g.inc();
    g.dec(3);
    assert.equal(c.value({ transport: 'http', method: 'unc_getBlock' }), 3);
    assert.equal(g.value(), 3);
    assert.equal(
      r.render(),
      [
        '# HELP unc_rpc_requests_total RPC requests.',
        '# TYPE unc_rpc_requests_total counter',
        'unc_rpc_requests_total{method="unc_getBlock",transport="http"} 3',
        'unc_rpc_requests_total{method="unc_sendTx",transport="ws"} 1',
        '# HELP unc_peers Connected peers.',
        '# TYPE unc_peers gauge',
        'unc_peers 3',
        '',
      ].join('\n'),
    );
  });

  it('renders cumulative histogram buckets with +Inf, _sum and _count', () => {
    const r = new Registry();
    const h = r.histogram('unc_block_interval_seconds', 'Time between blocks.', [0.5, 1, 2]);
    for (const v of [0.25, 0.5, 0.75, 1.5, 3]) h.observe(v);
    h.observe(1, { proposer: 'a' });
    assert.equal(
      r.render(),
      [
        '# HELP unc_block_interval_seconds Time between blocks.',
        '# TYPE unc_block_interval_seconds histogram',
        'unc_block_interval_seconds_bucket{le="0.5"} 2',
        'unc_block_interval_seconds_bucket{le="1"} 3',
        'unc_block_interval_seconds_bucket{le="2"} 4',
        'unc_block_interval_seconds_bucket{le="+Inf"} 5',
        'unc_block_interval_seconds_sum 6',
        'unc_block_interval_seconds_count 5',
        'unc_block_interval_seconds_bucket{proposer="a",le="0.5"} 0',
        'unc_block_interval_seconds_bucket{proposer="a",le="1"} 1',
        'unc_block_interval_seconds_bucket{proposer="a",le="2"} 1',
        'unc_block_interval_seconds_bucket{proposer="a",le="+Inf"} 1',
        'unc_block_interval_seconds_sum{proposer="a"} 1',
        'unc_block_interval_seconds_count{proposer="a"} 1',
        '',
      ].join('\n'),
    );
  });

  it('renders an untouched histogram with zero buckets', () => {
    const r = new Registry();
    r.histogram('unc_x_seconds', 'x', [1]);
    assert.match(r.render(), /unc_x_seconds_bucket\{le="1"\} 0\nunc_x_seconds_bucket\{le="\+Inf"\} 0\n/);
    assert.match(r.render(), /unc_x_seconds_sum 0\nunc_x_seconds_count 0\n$/);
  });

  it('escapes label values and help text, and spells special floats the Prometheus way', () => {
    const r = new Registry();
    const g = r.gauge('unc_weird', 'Help with \\ backslash\nand newline.');
    g.set(Number.POSITIVE_INFINITY, { path: 'a"b\\c\nd' });
    g.set(Number.NaN, { path: 'nan' });
    g.set(Number.NEGATIVE_INFINITY, { path: 'neg' });
    const lines = r.render().split('\n');
    assert.equal(lines[0], '# HELP unc_weird Help with \\\\ backslash\\nand newline.');
    assert.equal(lines[2], 'unc_weird{path="a\\"b\\\\c\\nd"} +Inf');
    assert.equal(lines[3], 'unc_weird{path="nan"} NaN');
    assert.equal(lines[4], 'unc_weird{path="neg"} -Inf');
  });

  it('runs collectors before rendering', () => {
    const r = new Registry();
    const g = r.gauge('unc_height', 'Chain height.');
    let height = 0;
    r.onCollect(() => g.set(height));
    height = 42;
    assert.match(r.render(), /^unc_height 42$/m);
  });

  it('returns the existing metric for a repeated registration of the same kind', () => {
    const r = new Registry();
    const a = r.counter('unc_a_total', 'a');
    assert.equal(r.counter('unc_a_total', 'a'), a);
    assert.throws(() => r.gauge('unc_a_total', 'a'), /already registered as counter/);
    r.histogram('unc_h_seconds', 'h', [1, 2]);
    assert.throws(() => r.histogram('unc_h_seconds', 'h', [1, 3]), /different buckets/);
    assert.throws(() => r.counter('unc_h_seconds_count', 'clash'), /clashes/);
  });

  it('rejects invalid names, labels, buckets and decreasing counters', () => {
    const r = new Registry();
    assert.throws(() => r.counter('1bad', 'x'), /invalid metric name/);
    assert.throws(() => r.counter('has-dash', 'x'), /invalid metric name/);
    const c = r.counter('unc_ok_total', 'x');
    assert.throws(() => c.inc(-1), RangeError);
    assert.throws(() => c.inc(Number.NaN), RangeError);
    assert.throws(() => c.inc(1, { 'bad-label': 'x' }), /invalid label name/);
    assert.throws(() => c.inc(1, { __reserved: 'x' }), /invalid label name/);
    const h = r.histogram('unc_ok_seconds', 'x', [1, 2]);
    assert.throws(() => h.observe(1, { le: '1' }), /reserved/);
    assert.throws(() => h.observe(Number.NaN), RangeError);
    assert.throws(() => r.histogram('unc_b1', 'x', [2, 1]), /strictly increasing/);
    assert.throws(() => r.histogram('unc_b2', 'x', []), /at least one/);
    assert.throws(() => r.histogram('unc_b3', 'x', [Number.NaN]), /not finite/);
  });

  it('produces output that parses line by line as exposition format 0.0.4', () => {
    const r = new Registry();
    r.counter('unc_c_total', 'c').inc(3, { k: 'v w' });
    r.gauge('unc_g', 'g').set(-1.5e-7);
    r.histogram('unc_h_seconds', 'h').observe(0.2);
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? \S+$/;
    const text = r.render();
    assert.ok(text.endsWith('\n'));
    for (const line of text.trimEnd().split('\n')) {
      if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      assert.match(line, sample);
      assert.ok(!Number.isNaN(Number(line.split(' ').at(-1)!.replace('+Inf', 'Infinity'))), line);
    }
    assert.equal(PROMETHEUS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8');
  });

  it('times a histogram observation', () => {
    const h = new Registry().histogram('unc_t_seconds', 't', [10]);
    const stop = h.startTimer();
    const seconds = stop();
    assert.ok(seconds >= 0 && seconds < 10);
  });
});
