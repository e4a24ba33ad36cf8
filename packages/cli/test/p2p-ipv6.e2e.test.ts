/**
 * `unc start` listening for peers on IPv6 (`--p2p-host ::1`), and on IPv4 and IPv6 at once
 * (`--p2p-host` twice): real nodes, a real connection over the IPv6 loopback. Every host was
 * written `/ip4/<host>` before, so `--p2p-host ::1` stopped the start and no node listened on IPv6.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { devGenesisJson } from '@unc/node';
import { runUnc, UNC } from './helpers.js';

/** Whether this machine has the IPv6 loopback (`ip -6 addr` shows ::1 on lo). */
const hasIpv6Loopback = Object.values(networkInterfaces()).some((list) =>
  list?.some((i) => i.family === 'IPv6' && i.address === '::1'),
);

interface Node {
  proc: ChildProcess;
  output: () => string;
  waitFor: (re: RegExp) => Promise<RegExpExecArray>;
}

function start(args: string[]): Node {
  const proc = spawn(process.execPath, [UNC, 'start', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UNC_LOG_LEVEL: 'info' },
  });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d;
    for (const w of [...waiters]) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  return {
    proc,
    output: () => out,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            waiters.delete(check);
            resolve(m);
          }
        };
        waiters.add(check);
        proc.once('exit', (code) => reject(new Error(`unc start exited (${code}) before ${re}:\n${out}`)));
        check();
      }),
  };
}

async function peersOf(rpcUrl: string): Promise<number> {
  const res = await fetch(rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'unc_status', params: [] }),
  });
  return ((await res.json()) as { result: { peers: number } }).result.peers;
}

describe('unc start on IPv6', {
  skip: hasIpv6Loopback ? false : 'this machine has no IPv6 loopback (::1)',
  // A node that never listens on ::1 (as before the fix) is waited for until then, not for ever.
  timeout: 120_000,
}, () => {
  const dirs: string[] = [];
  const nodes: Node[] = [];
  after(async () => {
    for (const n of nodes)
      if (n.proc.exitCode === null && n.proc.signalCode === null) {
        const exited = new Promise((r) => n.proc.once('exit', r));
        n.proc.kill('SIGTERM');
        await exited;
      }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const home = async (moniker: string): Promise<string> => {
    const dir = mkdtempSync(join(tmpdir(), 'unc-p2p-ipv6-'));
    dirs.push(dir);
    const init = await runUnc(['init', '--home', dir, '--moniker', moniker]);
    assert.equal(init.code, 0, init.stderr);
    return dir;
  };

  test('a node listens on ::1 and 127.0.0.1 together, and a second node connects to it over ::1', async () => {
    const genesisDir = mkdtempSync(join(tmpdir(), 'unc-p2p-ipv6-genesis-'));
    dirs.push(genesisDir);
    const genesis = join(genesisDir, 'genesis.json');
    writeFileSync(genesis, JSON.stringify(devGenesisJson({ blockTimeMs: 1000, epochBlocks: 60 })));
    const common = ['--genesis', genesis, '--p2p-port', '0', '--rpc-port', '0'];
    const a = start([
      '--home',
      await home('six-a'),
      ...common,
      '--p2p-host',
      '::1',
      '--p2p-host',
      '127.0.0.1',
    ]);
    nodes.push(a);
    const [, v6Port, peerId] = await a.waitFor(/Listen\s+\/ip6\/::1\/tcp\/(\d+)\/p2p\/(\w+)/);
    await a.waitFor(/Listen\s+\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//);
    const [, rpcA] = await a.waitFor(/RPC\s+(http:\/\/\S+)/);
    const b = start([
      '--home',
      await home('six-b'),
      ...common,
      '--p2p-host',
      '[::1]',
      '--peers',
      `/ip6/::1/tcp/${v6Port}/p2p/${peerId}`,
    ]);
    nodes.push(b);
    await b.waitFor(/Listen\s+\/ip6\/::1\/tcp\/\d+\/p2p\//);
    const [, rpcB] = await b.waitFor(/RPC\s+(http:\/\/\S+)/);
    assert.doesNotMatch(
      b.output(),
      /Listen\s+\/ip4\//,
      'listens on IPv6 only when only an IPv6 host is given',
    );
    // Connected over the IPv6 loopback: each counts the other (bounded by the test runner's timeout).
    while ((await peersOf(rpcA!)) < 1 || (await peersOf(rpcB!)) < 1)
      await new Promise((r) => setTimeout(r, 200));
  });

  test('a host that is not an IP address is refused before the node starts (BAD_ARGUMENT)', async () => {
    const dir = await home('six-bad');
    const genesis = join(dir, 'genesis.json');
    writeFileSync(genesis, JSON.stringify(devGenesisJson({ blockTimeMs: 1000, epochBlocks: 60 })));
    const r = await runUnc([
      'start',
      '--home',
      dir,
      '--genesis',
      genesis,
      '--p2p-host',
      'fe80::1%lo',
      '--rpc-port',
      '0',
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /invalid --p2p-host "fe80::1%lo".*BAD_ARGUMENT/);
  });
});
