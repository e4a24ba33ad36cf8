import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { NodeUnreachableError, RpcClientError } from '@unc/sdk';
import { checkBenchArgs } from '../bench/bench-args.js';
import { BodyPoster, countRefusals, encodeSendBody, formatCounts, postRetrying } from '../bench/presign.js';

const spec = { valued: ['seconds', 'trace'], flags: ['skip-single'] };

describe('bench command lines', () => {
  test('known options run; help is help; anything else is refused before the bench starts', () => {
    assert.deepEqual(checkBenchArgs([], spec), { kind: 'run' });
    assert.deepEqual(checkBenchArgs(['--seconds', '10', '--skip-single', '--trace', 'f'], spec), {
      kind: 'run',
    });
    assert.deepEqual(checkBenchArgs(['--help'], spec), { kind: 'help' });
    assert.deepEqual(checkBenchArgs(['--seconds', '5', '-h'], spec), { kind: 'help' });
    assert.deepEqual(checkBenchArgs(['--second', '10'], spec), {
      kind: 'error',
      message: 'unknown option --second',
    });
    assert.deepEqual(checkBenchArgs(['--seconds'], spec), {
      kind: 'error',
      message: '--seconds needs a value',
    });
    assert.deepEqual(checkBenchArgs(['--seconds', '--skip-single'], spec), {
      kind: 'error',
      message: '--seconds needs a value',
    });
    assert.deepEqual(checkBenchArgs(['10'], spec), { kind: 'error', message: 'unexpected argument "10"' });
  });

  // Both ran a whole testnet for `--help` before: these would time out rather than exit at once.
  for (const bench of ['consensus', 'tps'])
    test(`bench:${bench} prints its usage for --help and refuses an unknown option`, () => {
      const script = new URL(`../bench/${bench}.js`, import.meta.url).pathname;
      const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`usage: npm run bench:${bench}`));
      // Batches outstanding per client: the saturating clients' load is stated, not implied.
      assert.match(help.stdout, /--in-flight/);
      const bad = spawnSync(process.execPath, [script, '--bogus'], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, /unknown option --bogus/);
    });

  test('bench:consensus --only-single (the single-node phase alone) is an option, and refuses --skip-single beside it', () => {
    const script = new URL('../bench/consensus.js', import.meta.url).pathname;
    const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 60_000 });
    assert.match(help.stdout, /--only-single/);
    const both = spawnSync(process.execPath, [script, '--only-single', '--skip-single'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(both.status, 0);
    assert.match(both.stderr, /--only-single and --skip-single exclude each other/);
    // The testnet's options run nothing with --only-single: refused, not silently ignored.
    for (const [option, value] of [
      ['--validators', '4'],
      ['--rate', '100'],
      ['--pairs', '2'],
      ['--trace', '/tmp/never-written'],
      ['--pace', 'on'],
    ]) {
      const ignored = spawnSync(process.execPath, [script, '--only-single', option!, value!], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.notEqual(ignored.status, 0, option);
      assert.match(
        ignored.stderr,
        new RegExp(`--only-single runs no testnet, so ${option} has nothing to set`),
      );
    }
  });

  test("bench:consensus's single-node run is given its --senders and --batch (it said 'same parameters' and used bench:tps's defaults)", async () => {
    const script = new URL('../bench/consensus.js', import.meta.url).pathname;
    // The child's temporary files go here, removed after; its process group is stopped once the
    // single-node run has printed its parameters (before it starts a node).
    const tmp = mkdtempSync(join(tmpdir(), 'unc-bench-args-'));
    const child = spawn(
      process.execPath,
      [script, '--only-single', '--seconds', '1', '--clients', '1', '--senders', '3', '--batch', '7'],
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp } },
    );
    try {
      let out = '';
      const header = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no bench:tps line within 60 s:\n${out}`)), 60_000);
        child.stdout!.on('data', (d: Buffer) => {
          out += d;
          const m = /\[tps\] (bench:tps .*)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        child.on('exit', () => {
          clearTimeout(timer);
          reject(new Error(`bench:consensus ended before its single-node run:\n${out}`));
        });
      });
      assert.match(header, /1 clients × 2 in flight, 3 senders, batches of 7,/);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // Already gone.
      }
      if (child.exitCode === null && child.signalCode === null) await exited;
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('the bench poster sends the pre-encoded body as is over one kept-alive connection, reads answers as the sdk does, and retries "busy"', async () => {
    const seen: { body: string; socket: unknown }[] = [];
    let busyLeft = 1;
    const server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const body = Buffer.concat(parts).toString('utf8');
        seen.push({ body, socket: req.socket });
        const { id, params } = JSON.parse(body) as { id: number; params: [string[]] };
        res.setHeader('content-type', 'application/json');
        if (params[0][0] === 'bad') {
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id,
              error: { code: -32602, message: 'bad params', data: { field: 'txs' } },
            }),
          );
        } else if (busyLeft-- > 0) {
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id,
              error: { code: -32005, message: 'busy', data: { reason: 'BUSY' } },
            }),
          );
        } else {
          res.end(
            JSON.stringify({
              jsonrpc: '2.0',
              id,
              result: params[0].map((h) => ({ hash: h, replaced: false })),
            }),
          );
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const poster = new BodyPoster(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const body = encodeSendBody(['aa', 'bb'], 7);
      assert.deepEqual(JSON.parse(body.toString()), {
        jsonrpc: '2.0',
        id: 7,
        method: 'unc_sendTransactions',
        params: [['aa', 'bb']],
      });
      // The first answer is "busy": retried after a wait, then answered.
      assert.deepEqual(await postRetrying(poster, body), [
        { hash: 'aa', replaced: false },
        { hash: 'bb', replaced: false },
      ]);
      assert.equal(seen.length, 2);
      assert.equal(seen[0]!.body, body.toString());
      assert.equal(seen[1]!.socket, seen[0]!.socket);
      // Any other error is thrown as the sdk's error, not retried.
      await assert.rejects(postRetrying(poster, encodeSendBody(['bad'], 8)), (err: unknown) => {
        assert.ok(err instanceof RpcClientError);
        return true;
      });
      assert.equal(seen.length, 3);
    } finally {
      poster.close();
      await new Promise((r) => server.close(r));
    }
  });

  test('the bench poster gives up on a node that never answers (NodeUnreachableError), as the sdk client does', async () => {
    const held: import('node:http').ServerResponse[] = [];
    const server = createServer((_req, res) => {
      held.push(res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const poster = new BodyPoster(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 200);
    try {
      const outcome = await Promise.race([
        poster.post(encodeSendBody(['aa'], 1)).then(
          () => 'answered',
          (err: unknown) => err,
        ),
        new Promise((r) => setTimeout(() => r('still waiting after 10 s'), 10_000).unref()),
      ]);
      assert.ok(outcome instanceof NodeUnreachableError, String(outcome));
    } finally {
      poster.close();
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('bench refusal counts', () => {
  test("a batch's per-transfer refusals are counted by reason; admitted ones are not", () => {
    const counts = new Map<string, number>();
    countRefusals(
      [
        { hash: 'aa', replaced: false },
        { error: { reason: 'INSUFFICIENT_FUNDS', message: 'balance 0' } },
        { error: { reason: 'INSUFFICIENT_FUNDS', message: 'balance 0' } },
      ],
      counts,
    );
    countRefusals([{ error: { reason: 'NONCE_GAP', message: 'ahead' } }], counts);
    assert.equal(formatCounts(counts), 'INSUFFICIENT_FUNDS×2, NONCE_GAP×1');
    assert.equal(formatCounts(new Map()), 'none');
  });
});
