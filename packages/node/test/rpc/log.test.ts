import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { createLogger, type LoggerOptions } from '../../src/log.js';

// The logger lives in src/log.ts; its tests sit here because the RPC server is its first user.

const FIXED = new Date('2026-11-26T17:00:00.000Z');

function capture(opts: LoggerOptions = {}) {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream, opts: { clock: () => FIXED, stream, ...opts } };
}

describe('logger', () => {
  const saved = { level: process.env.UNC_LOG_LEVEL, format: process.env.UNC_LOG_FORMAT };
  afterEach(() => {
    for (const [key, value] of [
      ['UNC_LOG_LEVEL', saved.level],
      ['UNC_LOG_FORMAT', saved.format],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('writes text lines with padded level, component and key=value fields', () => {
    const c = capture({ level: 'debug', json: false });
    const log = createLogger('rpc', c.opts);
    log.info('listening', { url: 'http://127.0.0.1:1/', height: 5n, hash: new Uint8Array([0xab, 1]) });
    log.debug('quoted', { note: 'two words', empty: '', skip: undefined, obj: { a: 1n } });
    log.error('failed', { err: new Error('boom') });
    assert.equal(
      c.lines[0],
      '2026-11-26T17:00:00.000Z INFO  [rpc] listening url=http://127.0.0.1:1/ height=5 hash=ab01\n',
    );
    assert.equal(
      c.lines[1],
      '2026-11-26T17:00:00.000Z DEBUG [rpc] quoted note="two words" empty="" obj="{\\"a\\":\\"1\\"}"\n',
    );
    assert.match(
      c.lines[2]!,
      /^2026-11-26T17:00:00.000Z ERROR \[rpc\] failed err="Error: boom"\n {2}Error: boom\n {6}at /,
    );
  });

  it('writes JSON lines with bigint as decimal and bytes as hex', () => {
    const c = capture({ level: 'info', json: true });
    createLogger('p2p', c.opts).warn('peer dropped', {
      peer: Buffer.from([1, 2]),
      nested: { n: 10n ** 20n, b: new Uint8Array([255]) },
      level: 'debug',
    });
    assert.deepEqual(JSON.parse(c.lines[0]!), {
      time: '2026-11-26T17:00:00.000Z',
      level: 'warn',
      component: 'p2p',
      msg: 'peer dropped',
      peer: '0102',
      nested: { n: '100000000000000000000', b: 'ff' },
    });
  });

  it('filters below the level, and children share settings under a dotted name', () => {
    const c = capture({ level: 'warn', json: false });
    const log = createLogger('node', c.opts);
    log.info('hidden');
    log.debug('hidden');
    log.child('rpc').warn('shown');
    assert.equal(c.lines.length, 1);
    assert.match(c.lines[0]!, /WARN {2}\[node\.rpc\] shown\n$/);
    assert.equal(log.child('rpc').level, 'warn');
  });

  it('takes level and format from UNC_LOG_LEVEL and UNC_LOG_FORMAT', () => {
    process.env.UNC_LOG_LEVEL = 'ERROR';
    process.env.UNC_LOG_FORMAT = 'json';
    const c = capture();
    const log = createLogger('x', c.opts);
    log.warn('hidden');
    log.error('shown');
    assert.equal(c.lines.length, 1);
    assert.equal(JSON.parse(c.lines[0]!).msg, 'shown');
    process.env.UNC_LOG_LEVEL = 'nonsense';
    assert.equal(createLogger('x').level, 'info');
  });

  it('survives circular fields', () => {
    const c = capture({ level: 'info', json: true });
    const loop: Record<string, unknown> = {};
    loop.loop = loop;
    createLogger('x', c.opts).info('loop', { loop, ok: 1 });
    const entry = JSON.parse(c.lines[0]!);
    assert.equal(entry.msg, 'loop');
    assert.equal(entry.loop, '[unserialisable]');
    assert.equal(entry.ok, 1);
    const t = capture({ level: 'info', json: false });
    createLogger('x', t.opts).info('loop', { loop });
    assert.match(t.lines[0]!, / loop loop=\[unserialisable\]\n$/);
  });
});
