/**
 * SIGINT and SIGTERM against the real long-running commands (shutdown.ts, docs/operators.md
 * "Stopping"): during start-up a signal stopped nothing, it killed the process outright (a
 * `unc dev` left its swtpm children running), and once stopping a second or third signal was
 * ignored in silence by `unc dev` and `unc start`, and ran the stop sequence again in
 * `unc miner start` and `unc gateway start`.
 *
 * What makes a stop hang here is real too: a client that sent half a request to the miner agent's
 * status port holds its HTTP server's close (Node waits for a request under way).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ChainDb, devGenesisJson } from '@unc/node';
import { runUnc, tempHome, UNC } from './helpers.js';

interface Run {
  proc: ChildProcess;
  output: () => string;
  /** Resolves with the first match of `re` in the output (stdout and stderr), failing after 120 s. */
  waitFor: (re: RegExp) => Promise<RegExpExecArray>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const runs: Run[] = [];
const homes: { dir: string; cleanup: () => void }[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  for (const r of runs) {
    if (r.proc.exitCode === null && r.proc.signalCode === null) {
      r.proc.kill('SIGKILL');
      await r.exit;
    }
  }
  // Whatever a failed test left running under a home (swtpm), by its pid.
  for (const h of homes) for (const p of processesNaming(h.dir)) killQuietly(p.pid);
  for (const h of homes) h.cleanup();
});

function home(): string {
  const h = tempHome();
  homes.push(h);
  return h.dir;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

function unc(args: string[], env: Record<string, string> = {}): Run {
  const proc = spawn(process.execPath, [UNC, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UNC_LOG_LEVEL: 'info', ...env },
  });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d;
    for (const w of [...waiters]) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const run: Run = {
    proc,
    output: () => out,
    exit,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (!m) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(m);
        };
        // A bound on failure only: on a loaded machine start-up can be slow.
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${re} in 120 s:\n${out}`));
        }, 120_000);
        waiters.add(check);
        exit.then(({ code, signal }) => {
          if (!waiters.has(check)) return;
          check();
          if (!waiters.has(check)) return;
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`exited (${signal ?? code}) before ${re}:\n${out}`));
        });
        check();
      }),
  };
  runs.push(run);
  return run;
}

/** Processes other than this one whose command line names `dir` (a swtpm names its state folder). */
function processesNaming(dir: string): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmd.includes(dir)) found.push({ pid: Number(name), cmd });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Those of `processesNaming` that still run (a zombie has ended; only its reaping is due). */
function liveNaming(dir: string): { pid: number; cmd: string }[] {
  return processesNaming(dir).filter((p) => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${p.pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  });
}

/** The job folders (provider/sandbox.ts) that process `pid` made and left in the temporary directory. */
function jobFoldersOf(pid: number | undefined): string[] {
  return readdirSync(tmpdir()).filter((n) => n.startsWith(`unc-jobs-${pid}-`));
}

/** The chain database opens (the LOCK of a process still holding it refuses) and closes again. */
async function assertDataDirOpens(dataDir: string): Promise<void> {
  const db = await ChainDb.open(join(dataDir, 'chain'));
  await db.close();
}

/** A connection to `url`'s port that sent half a request: the HTTP server's close waits for it. */
async function holdHalfARequest(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  socket.write('GET /status HTTP/1.1\r\nHost: x\r\n');
}

const exitedWith = async (run: Run) => run.exit;

const hasSwtpm = (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, 'swtpm')));

describe('unc dev: a signal during start-up', () => {
  test('SIGTERM early in start-up (the chain just opened): it stops cleanly (exit 0), the data dir opens again', async () => {
    const dir = home();
    // With a chip the start-up lasts until its registration is included (blocks of a second), so
    // the signal lands in it whatever the machine's load.
    const dev = unc(['dev', '--home', dir, '--rpc-port', '0', '--chips', '1']);
    // The node's first line comes from opening the chain, inside UncNode.start.
    await dev.waitFor(/\[dev\.chain\]/);
    dev.proc.kill('SIGTERM');
    const { code, signal } = await exitedWith(dev);
    assert.equal(signal, null, `killed by ${signal}:\n${dev.output()}`);
    assert.equal(code, 0, dev.output());
    assert.match(dev.output(), /stopped during start-up/);
    assert.doesNotMatch(dev.output(), /RPC\s+http/, 'no ready line');
    await assertDataDirOpens(join(dir, 'data'));
  });

  test('SIGTERM while the miner registers a swtpm chip: swtpm and the node stop (exit 0), nothing is left running', {
    skip: !hasSwtpm && 'no swtpm',
  }, async () => {
    const dir = home();
    const dev = unc(['dev', '--home', dir, '--rpc-port', '0', '--chips', '0', '--tpm-chips', '1']);
    // The provider API starts inside the agent's start, after the swtpm chips; registration follows.
    await dev.waitFor(/provider API listening/);
    assert.ok(
      processesNaming(dir).some((p) => p.cmd.startsWith('swtpm')),
      'swtpm runs',
    );
    dev.proc.kill('SIGTERM');
    const { code, signal } = await exitedWith(dev);
    assert.equal(signal, null, `killed by ${signal}:\n${dev.output()}`);
    assert.equal(code, 0, dev.output());
    assert.doesNotMatch(dev.output(), /RPC\s+http/, 'no ready line');
    assert.deepEqual(processesNaming(dir), [], 'a child process was left running');
    assert.deepEqual(jobFoldersOf(dev.proc.pid), [], "the provider's job folder was left");
    await assertDataDirOpens(join(dir, 'data'));
  });

  test('SIGTERM right after spawn: whenever it lands, nothing is left and the data dir opens', async () => {
    const dir = home();
    const dev = unc(['dev', '--home', dir, '--rpc-port', '0', '--chips', '0']);
    dev.proc.kill('SIGTERM');
    const { code, signal } = await exitedWith(dev);
    // Before the program has loaded the default action ends it (nothing is open yet); after, it
    // stops as above.
    assert.ok(signal === 'SIGTERM' || code === 0, `exit ${code} ${signal}:\n${dev.output()}`);
    assert.deepEqual(processesNaming(dir), []);
    if (existsSync(join(dir, 'data', 'chain'))) await assertDataDirOpens(join(dir, 'data'));
  });
});

describe('unc dev: signals while stopping', () => {
  test('a second SIGTERM is answered, a third exits at once with 143 and leaves no swtpm running', {
    skip: !hasSwtpm && 'no swtpm',
  }, async () => {
    const dir = home();
    const dev = unc(['dev', '--home', dir, '--rpc-port', '0', '--chips', '0', '--tpm-chips', '1']);
    const [, status] = await dev.waitFor(/\(status (http:\/\/127\.0\.0\.1:\d+)\/status\)/);
    await holdHalfARequest(status!);
    dev.proc.kill('SIGTERM');
    await dev.waitFor(/received SIGTERM, stopping/);
    dev.proc.kill('SIGTERM');
    await dev.waitFor(/received SIGTERM again: still stopping/);
    assert.equal(dev.proc.exitCode, null, 'the second signal does not end it');
    dev.proc.kill('SIGTERM');
    const { code, signal } = await exitedWith(dev);
    assert.equal(signal, null, `killed by ${signal}:\n${dev.output()}`);
    assert.equal(code, 143, dev.output());
    assert.match(dev.output(), /exiting at once/);
    assert.deepEqual(processesNaming(dir), [], 'the forced exit left a child process running');
    assert.deepEqual(jobFoldersOf(dev.proc.pid), [], "the forced exit left the provider's job folder");
    await assertDataDirOpens(join(dir, 'data'));
  });
});

describe('unc dev: a third signal while a swtpm starts', () => {
  test('the forced exit kills the swtpm that does not listen yet', {
    skip: !hasSwtpm && 'no swtpm',
  }, async () => {
    const dir = home();
    // A swtpm slow to listen: `swtpm` on the PATH is a script that waits for a gate, then becomes
    // the real one. The gate never opens here, so the three signals land while it starts; its
    // command line names the home (the state folder) like the real one's.
    const realSwtpm = (process.env.PATH ?? '')
      .split(':')
      .map((d) => join(d, 'swtpm'))
      .find((p) => existsSync(p))!;
    const bin = join(dir, 'slow-bin');
    mkdirSync(bin);
    const gate = join(dir, 'swtpm-gate');
    writeFileSync(
      join(bin, 'swtpm'),
      `#!/bin/sh\nwhile [ ! -e '${gate}' ]; do sleep 0.05; done\nexec '${realSwtpm}' "$@"\n`,
      { mode: 0o755 },
    );
    const dev = unc(['dev', '--home', dir, '--rpc-port', '0', '--chips', '0', '--tpm-chips', '1'], {
      PATH: `${bin}:${process.env.PATH ?? ''}`,
    });
    while (!processesNaming(dir).some((p) => p.cmd.includes('--tpm2'))) {
      if (dev.proc.exitCode !== null) assert.fail(`unc dev exited:\n${dev.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    dev.proc.kill('SIGTERM');
    await dev.waitFor(/received SIGTERM during start-up/);
    dev.proc.kill('SIGTERM');
    await dev.waitFor(/received SIGTERM again: still stopping/);
    dev.proc.kill('SIGTERM');
    const { code, signal } = await exitedWith(dev);
    assert.equal(signal, null, `killed by ${signal}:\n${dev.output()}`);
    assert.equal(code, 143, dev.output());
    assert.match(dev.output(), /exiting at once/);
    // The swtpm got its SIGTERM before the exit, but it ends (and is reaped) a moment later: the
    // wait is bounded only so that a swtpm left running fails the test instead of holding it.
    const bound = Date.now() + 30_000;
    while (liveNaming(dir).length > 0 && Date.now() < bound)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(liveNaming(dir), [], 'the forced exit left the starting swtpm running');
  });
});

describe('unc miner start: signals', () => {
  test('a second SIGINT while stopping is answered, a third exits at once with 130', async () => {
    const dir = home();
    const dev = unc(['dev', '--home', dir, '--rpc-port', '0', '--chips', '0', '--block-time', '250'], {
      UNC_LOG_LEVEL: 'warn',
    });
    const [, url] = await dev.waitFor(/RPC\s+(http:\/\/127\.0\.0\.1:\d+)/);
    const miner = unc([
      'miner',
      'start',
      '--home',
      dir,
      '--node',
      url!,
      '--from',
      'dev9',
      '--dev-chips',
      '1',
      '--output',
      'json',
    ]);
    const [, status] = await miner.waitFor(/"status": "(http:\/\/127\.0\.0\.1:\d+)"/);
    await holdHalfARequest(status!);
    miner.proc.kill('SIGINT');
    await miner.waitFor(/received SIGINT, stopping/);
    miner.proc.kill('SIGINT');
    await miner.waitFor(/received SIGINT again: still stopping/);
    assert.equal(miner.proc.exitCode, null, 'the second signal does not end it');
    miner.proc.kill('SIGINT');
    const { code, signal } = await exitedWith(miner);
    assert.equal(signal, null, `killed by ${signal}:\n${miner.output()}`);
    assert.equal(code, 130, miner.output());
    dev.proc.kill('SIGTERM');
    assert.equal((await exitedWith(dev)).code, 0, dev.output());
  });

  test('SIGTERM while it waits for a node that does not answer exits 0', async () => {
    const dir = home();
    const { server, url, accepted } = await silentServer();
    try {
      const miner = unc([
        'miner',
        'start',
        '--home',
        dir,
        '--node',
        url,
        '--from',
        'dev9',
        '--dev-chips',
        '1',
      ]);
      await accepted;
      miner.proc.kill('SIGTERM');
      const { code, signal } = await exitedWith(miner);
      assert.equal(signal, null, `killed by ${signal}:\n${miner.output()}`);
      assert.equal(code, 0, miner.output());
    } finally {
      server.close();
    }
  });
});

describe('unc gateway start: signals', () => {
  test('SIGTERM while it waits for a node that does not answer exits 0', async () => {
    const dir = home();
    const { server, url, accepted } = await silentServer();
    try {
      const gw = unc([
        'gateway',
        'start',
        '--home',
        dir,
        '--node',
        url,
        '--from',
        'dev0',
        '--budget',
        '1',
        '--models',
        'ocr',
        '--port',
        '0',
      ]);
      await accepted;
      gw.proc.kill('SIGTERM');
      const { code, signal } = await exitedWith(gw);
      assert.equal(signal, null, `killed by ${signal}:\n${gw.output()}`);
      assert.equal(code, 0, gw.output());
    } finally {
      server.close();
    }
  });
});

describe('unc start: a signal during start-up', () => {
  test('SIGTERM after the chain opened, and again once RPC listens (libp2p starting): each stops cleanly (exit 0), the data dir opens again', async () => {
    // unc start's start-up is the node's alone (tenths of a second): a signal sent as these lines
    // are read may land after the ready lines on a fast machine, where it stops as before. It must
    // never end the process by the signal. The node's abort path itself is tested deterministically
    // in packages/node/test/node-start-abort.test.ts.
    const dir = home();
    const init = await runUnc(['init', '--home', dir, '--moniker', 'sig']);
    assert.equal(init.code, 0, init.stderr);
    const genesis = join(dir, 'genesis.json');
    writeFileSync(genesis, JSON.stringify(devGenesisJson({ blockTimeMs: 1000, epochBlocks: 60 })));
    const args = ['start', '--home', dir, '--genesis', genesis, '--p2p-port', '0', '--rpc-port', '0'];
    for (const during of [/\[sig\.chain\]/, /\[sig\.rpc\] rpc listening/]) {
      const node = unc(args);
      await node.waitFor(during);
      node.proc.kill('SIGTERM');
      const { code, signal } = await exitedWith(node);
      assert.equal(signal, null, `killed by ${signal} (${during}):\n${node.output()}`);
      assert.equal(code, 0, node.output());
      assert.match(node.output(), /stopped/);
      await assertDataDirOpens(join(dir, 'data'));
    }
  });
});

/** A TCP server that accepts connections and never answers: a node that hangs. */
async function silentServer(): Promise<{ server: Server; url: string; accepted: Promise<void> }> {
  let onAccept: () => void = () => {};
  const accepted = new Promise<void>((r) => (onAccept = r));
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onAccept();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}`, accepted };
}
