/**
 * POCI with real software TPMs, driven only through the unc program as an operator would:
 * a vendor CA, chips provisioned in swtpm, the vendor registered by governance, a miner agent
 * answering slots; one TPM stopped (offline after K misses) and started again (online, reboot
 * visible); a revocation; and evidence written by the standard tpm2-tools registered on chain.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { normalizeSerialHex } from '@unc/core';
import { type ChipEventJson, type ChipJson, UncClient } from '@unc/sdk';
import { until as waitUntil } from '@unc/test-utils';
import { type DevNode, runUnc, startDev, tempHome, UNC } from './helpers.js';

const run = promisify(execFile);

async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    if (port >= 65535) continue;
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer()
        .once('error', () => resolve(false))
        .listen(port + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

/** One swtpm on loopback with a fixed port pair and state dir, so a restart is the same chip. */
class SoftTpm {
  proc: ChildProcess | null = null;
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    mkdirSync(dir, { recursive: true });
  }
  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    // A port just released by a killed swtpm can take a moment to bind again: start again until
    // it listens, and say what swtpm said if it never does.
    let said = '';
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const proc = spawn(
        'swtpm',
        [
          'socket',
          '--tpm2',
          '--tpmstate',
          `dir=${this.dir}`,
          '--server',
          `type=tcp,port=${this.port},bindaddr=127.0.0.1`,
          '--ctrl',
          `type=tcp,port=${this.port + 1},bindaddr=127.0.0.1`,
          '--flags',
          'not-need-init,startup-clear',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      proc.stderr!.on('data', (d) => (said += d));
      this.proc = proc;
      const until = Date.now() + 5_000;
      while (Date.now() < until && proc.exitCode === null) {
        const up = await new Promise<boolean>((resolve) => {
          const s = createServer()
            .once('error', () => resolve(true))
            .listen(this.port, '127.0.0.1', () => s.close(() => resolve(false)));
        });
        if (up && proc.exitCode === null) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new Error(`swtpm on ${this.port} did not start: ${said.trim()}`);
  }
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
    this.proc = null;
  }
}

const until = <T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000) =>
  waitUntil(what, fn, { timeoutMs, intervalMs: 250 });

describe('POCI with real software TPMs', () => {
  const home = tempHome();
  const dir = (...p: string[]) => join(home.dir, ...p);
  let dev: DevNode;
  let client: UncClient;
  const tpms: SoftTpm[] = [];
  let miner: ChildProcess | null = null;
  const h = () => ['--home', dir('home')];

  before(async () => {
    dev = await startDev(dir('home'), ['--block-time', '200', '--epoch-blocks', '24', '--chips', '0']);
    client = new UncClient(dev.url);
    for (let i = 0; i < 4; i++) tpms.push(new SoftTpm(dir(`tpm${i}`), await freePortPair()));
    for (const t of tpms) await t.start();
  });

  after(async () => {
    if (miner && miner.exitCode === null) {
      const exited = new Promise((r) => miner!.once('exit', r));
      miner.kill('SIGTERM');
      await exited;
    }
    for (const t of tpms) await t.stop();
    await dev?.stop();
    home.cleanup();
  });

  test('vendor CA, provisioning, governance registration, and three chips answering their slots', async () => {
    const ok = async (args: string[]) => {
      const r = await runUnc([...args, ...h(), '-y']);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await ok(['vendor', 'ca', 'create', '--vendor-id', 'acme-tpm', '--out', dir('ca')]);
    for (let i = 0; i < 3; i++) {
      await ok([
        'vendor',
        'provision',
        '--ca',
        dir('ca'),
        '--tpm',
        tpms[i]!.endpoint,
        '--model',
        'swtpm-v1',
        '--out',
        dir(`chip${i}`),
      ]);
    }
    await ok([
      'vendor',
      'register',
      '--ca',
      dir('ca'),
      '--from',
      'governance',
      '--model',
      'swtpm-v1',
      '--power',
      '1000',
    ]);
    const vendors = JSON.parse(await ok(['query', 'vendors', '--output', 'json'])) as {
      id: string;
      profile: string;
    }[];
    assert.ok(vendors.some((v) => v.id === 'acme-tpm' && v.profile === 'tpm2'));

    miner = spawn(
      process.execPath,
      [
        UNC,
        'miner',
        'start',
        '--from',
        'dev8',
        ...tpms.slice(0, 3).flatMap((t, i) => ['--tpm-chip', `${t.endpoint}=${dir(`chip${i}`)}`]),
        ...h(),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, UNC_LOG_LEVEL: 'warn' } },
    );
    const chips = await until(
      'three TPM chips answering',
      async () => {
        const list = await client.call<ChipJson[]>('unc_getChips', []);
        const tpmChips = list.filter((c) => c.profile === 'tpm2');
        return tpmChips.length === 3 && tpmChips.every((c) => c.slotsAnswered >= 2 && c.online) && tpmChips;
      },
      90_000,
    );
    for (const c of chips) {
      assert.equal(c.vendorId, 'acme-tpm');
      assert.equal(c.power, '1000');
      assert.ok(c.tpmClock);
    }
    const status = await runUnc(['miner', 'status', '--output', 'json', ...h()]);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { chips: unknown[] }).chips.length, 3);
  });

  test('a stopped TPM goes offline after K misses; restarted, it comes back and its reboot is on chain', async () => {
    const list = await client.call<ChipJson[]>('unc_getChips', []);
    const chip1 = await chipOf(1);
    assert.ok(list.some((c) => c.chipId === chip1.chipId));
    const resetBefore = chip1.tpmClock!.resetCount;
    await tpms[1]!.stop();
    const offline = await until(
      'chip 1 offline',
      async () => {
        const c = await client.call<ChipJson>('unc_getChip', [chip1.chipId]);
        return !c.online && c;
      },
      90_000,
    );
    assert.ok(offline.consecutiveMisses >= 3);
    // The other chips keep answering meanwhile.
    const others = await Promise.all([0, 2].map(chipOf));
    assert.ok(others.every((c) => c.online));

    await tpms[1]!.start();
    const back = await until(
      'chip 1 online again',
      async () => {
        const c = await client.call<ChipJson>('unc_getChip', [chip1.chipId]);
        return c.online && c.lastAnsweredAt > offline.lastAnsweredAt && c;
      },
      90_000,
    );
    assert.ok(back.tpmClock!.resetCount > resetBefore, 'the TPM reset is visible in its attested clock');
    const events = await client.call<ChipEventJson[]>('unc_getChipEvents', [chip1.chipId, 200]);
    assert.ok(
      events.some((e) => e.event.type === 'chipRebooted'),
      'a chipRebooted event',
    );
    const missed = events.filter((e) => e.event.type === 'slotMissed');
    assert.ok(missed.length >= 3);
    // The first answer after the reboot is accepted without credit (docs/poci.md, "Asleep between
    // challenges"); the chip is online again only from a later one.
    assert.ok(
      events.some((e) => e.event.type === 'answerUncredited' && e.event.reason === 'rebooted'),
      'the answer after the reboot was not credited',
    );
    // The chips whose TPM ran all along (its clock with the chain's block time) lost no answer.
    for (const c of others) {
      const theirs = await client.call<ChipEventJson[]>('unc_getChipEvents', [c.chipId, 200]);
      assert.deepEqual(
        theirs.filter((e) => e.event.type === 'answerUncredited'),
        [],
        `chip ${c.chipId}`,
      );
    }
    const show = await runUnc(['chip', 'show', chip1.chipId, ...h()]);
    assert.match(show.stdout, /MISSED slot \d+ of epoch \d+ .*no answer included by height/);
    assert.match(show.stdout, /rebooted \(TPM resetCount/);
    assert.match(show.stdout, /WITHOUT CREDIT: the TPM rebooted/);
  });

  test('a TPM rolled back to an old state (its clock goes backwards) is refused', async () => {
    const chip0 = await chipOf(0);
    const t = tpms[0]!;
    // Snapshot the TPM's persistent state, let it run on (its clock advances on chain), then roll
    // the state back: the same resetCount with an older clock is a replay or a cloned TPM.
    await t.stop();
    cpSync(t.dir, `${t.dir}.snapshot`, { recursive: true });
    await t.start();
    // Run long enough that the rolled-back clock stays behind the chain's for a good while: the
    // rollback is visible only until the old clock catches up with the newest one seen.
    const ranFrom = Date.now();
    const advanced = await until(
      'chip 0 answering after the snapshot',
      async () => {
        const c = await client.call<ChipJson>('unc_getChip', [chip0.chipId]);
        return (
          Date.now() - ranFrom > 25_000 &&
          c.tpmClock!.resetCount > chip0.tpmClock!.resetCount &&
          c.slotsAnswered >= chip0.slotsAnswered + 3 &&
          c
        );
      },
      90_000,
    );
    await t.stop();
    rmSync(t.dir, { recursive: true, force: true });
    cpSync(`${t.dir}.snapshot`, t.dir, { recursive: true });
    await t.start();
    const refused = await until(
      'the rolled-back TPM refused',
      async () => {
        const status = JSON.parse((await runUnc(['miner', 'status', '--output', 'json', ...h()])).stdout) as {
          chips: { chipId: string; lastError: string | null; recent: { result: string }[] }[];
        };
        const mine = status.chips.find((c) => c.chipId === chip0.chipId);
        return mine?.recent.some((r) => /TPM_CLOCK_BACKWARDS/.test(r.result)) && mine;
      },
      90_000,
    );
    assert.ok(refused);
    const after = await client.call<ChipJson>('unc_getChip', [chip0.chipId]);
    assert.equal(after.tpmClock!.resetCount, advanced.tpmClock!.resetCount);
    assert.ok(
      BigInt(after.tpmClock!.clock) >= BigInt(advanced.tpmClock!.clock),
      'the chain kept the newest clock',
    );
  });

  test('revoking a chip certificate deactivates that chip at once', async () => {
    const chip2 = await chipOf(2);
    const meta = JSON.parse((await run('cat', [dir('chip2', 'ak.json')])).stdout) as { serial: string };
    const r = await runUnc([
      'vendor',
      'revoke',
      '-y',
      '--ca',
      dir('ca'),
      '--serial',
      meta.serial,
      '--from',
      'governance',
      ...h(),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const c = await client.call<ChipJson>('unc_getChip', [chip2.chipId]);
    assert.equal(c.status, 'revoked');
    assert.match(c.statusReason, /revoked by vendor acme-tpm/);
    assert.equal(c.online, false);
  });

  test('evidence written by tpm2-tools registers on chain; the same chip cannot register twice', async () => {
    const t = tpms[3]!;
    const env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${t.port}` };
    const w = dir('tools');
    mkdirSync(w, { recursive: true });
    // No resource manager between tpm2-tools and swtpm: flush transient objects after each tool.
    const flush = () => run('tpm2_flushcontext', ['-t'], { env });
    await run('tpm2_createek', ['-c', join(w, 'ek.ctx'), '-G', 'ecc', '-u', join(w, 'ek.pub')], { env });
    await flush();
    await run(
      'tpm2_createak',
      [
        '-C',
        join(w, 'ek.ctx'),
        '-c',
        join(w, 'ak.ctx'),
        '-G',
        'ecc',
        '-g',
        'sha256',
        '-s',
        'ecdsa',
        '-u',
        join(w, 'ak.pub'),
      ],
      { env },
    );
    await flush();
    await run('tpm2_flushcontext', ['-s'], { env });
    await run('tpm2_print', ['-t', 'TPM2B_PUBLIC', '-f', 'pem', join(w, 'ak.pub')], { env }).then((o) =>
      writeFileSync(join(w, 'ak.pem'), o.stdout),
    );
    const cert = await runUnc([
      'vendor',
      'certify',
      '--ca',
      dir('ca'),
      '--ak-public',
      join(w, 'ak.pem'),
      '--model',
      'swtpm-v1',
      '--out',
      join(w, 'ak-cert.pem'),
      ...h(),
    ]);
    assert.equal(cert.code, 0, cert.stderr);

    const register = async (from: string) => {
      const m = JSON.parse(
        (await runUnc(['chip', 'register-message', '--from', from, '--output', 'json', ...h()])).stdout,
      ) as {
        anchorHeight: number;
        message: string;
      };
      await run(
        'tpm2_quote',
        [
          '-c',
          join(w, 'ak.ctx'),
          '-l',
          'sha256:0',
          '-q',
          m.message,
          '-m',
          join(w, 'quote.attest'),
          '-s',
          join(w, 'quote.sig'),
        ],
        { env },
      );
      await flush();
      return runUnc([
        'chip',
        'register',
        '-y',
        '--from',
        from,
        '--vendor',
        'acme-tpm',
        '--anchor-height',
        String(m.anchorHeight),
        '--attest',
        join(w, 'quote.attest'),
        '--signature',
        join(w, 'quote.sig'),
        '--ak-cert',
        join(w, 'ak-cert.pem'),
        '--output',
        'json',
        ...h(),
      ]);
    };
    const first = await register('dev7');
    assert.equal(first.code, 0, first.stderr);
    const { chipId } = JSON.parse(first.stdout) as { chipId: string };
    const c = await client.call<ChipJson>('unc_getChip', [chipId]);
    assert.equal(c.vendorId, 'acme-tpm');
    assert.equal(c.profile, 'tpm2');
    // The same TPM again, even from another account: one chip, one identity.
    const again = await register('dev6');
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /CHIP_ALREADY_REGISTERED/);
  });

  async function chipOf(i: number): Promise<ChipJson> {
    // The chip record keeps the serials of the certificates that vouched for it, the AK's among them.
    const meta = JSON.parse((await run('cat', [dir(`chip${i}`, 'ak.json')])).stdout) as { serial: string };
    const list = await client.call<ChipJson[]>('unc_getChips', []);
    // Revocation ids: <issuer>:<serial>.
    const found = list.find((c) =>
      c.certSerials.some((id) => id.endsWith(`:${normalizeSerialHex(meta.serial)}`)),
    );
    if (!found) throw new Error(`no chip with AK serial ${meta.serial}`);
    return found;
  }
});
