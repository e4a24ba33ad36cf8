/**
 * The urgent-fee record on disk (agent/fee-budget-file.ts): what an unreadable record costs (only
 * what could not be read, and a copy of it is kept), how other chains' records are kept and
 * pruned, and the lock that keeps a second agent off one record. Clocks are scripted.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import {
  lockUrgentFeeFile,
  MAX_UNREADABLE_COPIES,
  openUrgentFeeBudget,
} from '../src/agent/fee-budget-file.js';

const HOUR = 3_600_000;
const BUDGET = 10n;

function chipHex(i: number): string {
  return (i + 1).toString(16).padStart(2, '0').repeat(32);
}

function clock(start = 1_800_000_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

/** A scratch home for one test, removed after it. */
async function withHome(run: (path: string, dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'unc-fee-file-'));
  try {
    await run(join(dir, 'urgent-fees.json'), dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function copiesIn(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.startsWith('urgent-fees.json.corrupt-'));
}

// The fail-closed rewrite of an unreadable record wrote this chain's "all spent" over the whole
// file: the other chains' spending in it was gone, and on those chains every chip had its whole
// budget back at the next start, with nothing left to see what had been there.
test('an unreadable record is copied aside before it is rewritten, and at most a few copies are kept', async () => {
  await withHome((path, dir) => {
    const c = clock();
    const warnings: string[] = [];
    const torn = '{"version":2,"chainId":"unc-test","spent":{},"others":{"unc-other":{"spent":{"';
    writeFileSync(path, torn);
    const budget = openUrgentFeeBudget(path, 'unc-test', BUDGET, (m) => warnings.push(m), c.now);
    assert.equal(budget.left(chipHex(0)), 0n, 'still fail-closed: every chip spent for the hour');
    assert.equal(warnings.length, 1);
    const [copy] = copiesIn(dir);
    assert.ok(copy, `a copy beside the record: ${readdirSync(dir).join(', ')}`);
    assert.match(warnings[0]!, new RegExp(`kept as .*${copy}`));
    assert.equal(readFileSync(join(dir, copy), 'utf8'), torn, 'what was there, byte for byte');
    assert.equal(statSync(join(dir, copy)).mode & 0o777, 0o600);
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).allSpentAt, c.t, 'the record written again');
    // A record that turns unreadable at every start leaves only the newest few copies.
    for (let i = 0; i < MAX_UNREADABLE_COPIES + 2; i++) {
      c.t += 1000;
      writeFileSync(path, `not json ${i}`);
      openUrgentFeeBudget(path, 'unc-test', BUDGET, (m) => warnings.push(m), c.now);
    }
    const kept = copiesIn(dir).map((n) => readFileSync(join(dir, n), 'utf8'));
    assert.equal(kept.length, MAX_UNREADABLE_COPIES);
    assert.deepEqual(
      kept.sort(),
      [2, 3, 4].map((i) => `not json ${i}`),
      'the newest ones',
    );
  });
});

test('one chain’s unreadable section costs no other chain its record; it counts as all spent there for the hour', async () => {
  await withHome((path, dir) => {
    const c = clock();
    const warnings: string[] = [];
    const open = (chain: string) => openUrgentFeeBudget(path, chain, BUDGET, (m) => warnings.push(m), c.now);
    const a = open('unc-a');
    a.charge(chipHex(0), 4n);
    assert.ok(a.save());
    const b = open('unc-b');
    b.charge(chipHex(0), 7n);
    assert.ok(b.save());
    // Chain c's section of bad values, beside the good ones.
    const file = JSON.parse(readFileSync(path, 'utf8'));
    file.others['unc-c'] = { spent: { [chipHex(0)]: [[c.t, 'lots']] } };
    writeFileSync(path, JSON.stringify(file));
    const back = open('unc-b');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /unc-c/);
    assert.equal(back.left(chipHex(0)), 3n, 'this chain’s record read as it was');
    assert.equal(copiesIn(dir).length, 1, 'the file as it was kept aside');
    assert.equal(open('unc-a').left(chipHex(0)), 6n, 'another chain’s record kept');
    assert.equal(open('unc-c').left(chipHex(1)), 0n, 'the unreadable one: all spent');
    c.t += HOUR;
    assert.equal(open('unc-c').left(chipHex(1)), BUDGET, 'for an hour of the agent’s clock');
    // This chain's own section unreadable: all spent here, the others still kept.
    const again = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(again.chainId, 'unc-b');
    again.spent = 5;
    again.others['unc-a'].spent[chipHex(2)] = [[c.t - 10, '2']];
    writeFileSync(path, JSON.stringify(again));
    assert.equal(open('unc-b').left(chipHex(0)), 0n);
    assert.equal(open('unc-a').left(chipHex(2)), 8n, 'the other chain’s record still read');
    assert.equal(warnings.length, 2);
  });
});

// Each chain another start named left its section in `others` for good: a node that names a new
// chain id at each start grew the file (read and rewritten whole before each paying send) by one
// section per start, forever.
test('other chains’ spending older than the hour is dropped from the record', async () => {
  await withHome((path) => {
    const c = clock();
    const warnings: string[] = [];
    const open = (chain: string) => openUrgentFeeBudget(path, chain, BUDGET, (m) => warnings.push(m), c.now);
    for (let i = 0; i < 5; i++) {
      const b = open(`unc-made-up-${i}`);
      b.charge(chipHex(0), 1n);
      assert.ok(b.save());
    }
    c.t += HOUR / 2;
    const real = open('unc-real');
    real.charge(chipHex(0), 1n);
    assert.ok(real.save());
    assert.equal(
      Object.keys(JSON.parse(readFileSync(path, 'utf8')).others).length,
      5,
      'within the hour: kept',
    );
    c.t += HOUR / 2;
    const later = open('unc-made-up-9');
    later.charge(chipHex(0), 1n);
    assert.ok(later.save());
    assert.deepEqual(
      Object.keys(JSON.parse(readFileSync(path, 'utf8')).others),
      ['unc-real'],
      'only the chain spent within the hour is left',
    );
    assert.equal(open('unc-real').left(chipHex(0)), BUDGET - 1n);
    assert.equal(warnings.length, 0);
  });
});

// Dated in the future (the clock set back, or a file written so), another chain's spending was
// kept in the record for as long as its date was ahead, whereas this chain's own counts from now.
test('other chains’ spending dated in the future counts from now, and is dropped an hour later', async () => {
  await withHome((path) => {
    const c = clock();
    const ahead = c.t + 10 * HOUR;
    const file = {
      version: 2,
      chainId: 'unc-b',
      spent: {},
      others: {
        'unc-x': { spent: { [chipHex(0)]: [[ahead, '3']] } },
        'unc-y': { spent: {}, allSpentAt: ahead },
      },
    };
    writeFileSync(path, JSON.stringify(file));
    const warnings: string[] = [];
    const open = () => openUrgentFeeBudget(path, 'unc-b', BUDGET, (m) => warnings.push(m), c.now);
    assert.ok(open().save());
    const saved = JSON.parse(readFileSync(path, 'utf8'));
    assert.deepEqual(saved.others['unc-x'].spent[chipHex(0)], [[c.t, '3']], 'brought back to now');
    assert.equal(saved.others['unc-y'].allSpentAt, c.t);
    c.t += HOUR;
    assert.ok(open().save());
    assert.equal(JSON.parse(readFileSync(path, 'utf8')).others, undefined, 'an hour later: dropped');
    assert.deepEqual(warnings, []);
  });
});

test('one agent per record: a second lock is refused while the first is held, and taken once it is released', async () => {
  await withHome((path) => {
    const release = lockUrgentFeeFile(path);
    assert.throws(() => lockUrgentFeeFile(path), { code: 'MINER_RUNNING', message: /another miner agent/ });
    release();
    const again = lockUrgentFeeFile(path);
    again();
    again();
    assert.deepEqual(readdirSync(join(path, '..')), [], 'nothing left behind');
  });
});

test('a lock held by another live process is refused, naming it; one whose process is gone is taken over', async () => {
  await withHome((path, dir) => {
    const lock = `${path}.lock`;
    // The test runner that started this process: alive for as long as this test runs.
    writeFileSync(lock, JSON.stringify({ pid: process.ppid, id: 'x' }));
    assert.throws(() => lockUrgentFeeFile(path), {
      code: 'MINER_RUNNING',
      message: new RegExp(`pid ${process.ppid}.*${lock}`),
    });
    assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.ppid, 'left as it was');
    // A process that has exited (a crashed agent).
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(lock, JSON.stringify({ pid: gone, id: 'x' }));
    const release = lockUrgentFeeFile(path);
    assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.pid, 'taken over');
    release();
    // This pid, by a process before this one (a container restarted runs its agent as the same pid).
    writeFileSync(lock, JSON.stringify({ pid: process.pid, id: 'before' }));
    lockUrgentFeeFile(path)();
    // Not a lock any agent wrote.
    writeFileSync(lock, 'garbage');
    lockUrgentFeeFile(path)();
    assert.deepEqual(readdirSync(dir), []);
  });
});

// A start that died (kill -9, power loss) between taking `.lock.break` and removing it left the
// breaker for good: every later start that found a stale lock was refused until it was removed by
// hand, or, its pid recycled by some other process, was told an agent was taking over.
test('a breaker left by a start that died is stale too: the stale lock is still taken over', async () => {
  await withHome((path, dir) => {
    const lock = `${path}.lock`;
    const gone = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(lock, JSON.stringify({ pid: gone, id: 'a' }));
    writeFileSync(`${lock}.break`, JSON.stringify({ pid: gone, id: 'b' }));
    const release = lockUrgentFeeFile(path);
    assert.equal(JSON.parse(readFileSync(lock, 'utf8')).pid, process.pid, 'taken over');
    release();
    assert.deepEqual(readdirSync(dir), [], 'the old breaker gone too');
    // One held by a live start is still respected.
    writeFileSync(lock, JSON.stringify({ pid: gone, id: 'a' }));
    writeFileSync(`${lock}.break`, JSON.stringify({ pid: process.ppid, id: 'b' }));
    assert.throws(() => lockUrgentFeeFile(path), { code: 'MINER_RUNNING', message: /taking over/ });
  });
});

// After a reboot or a container restart, the pid in a lock left by a killed agent is often some
// other live process's: every start was refused until the lock was removed by hand.
test('a lock whose pid now names another process (recycled) is taken over; the same process is refused', {
  skip: process.platform !== 'linux',
}, async () => {
  await withHome((path) => {
    const lock = `${path}.lock`;
    const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
    const started = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    writeFileSync(lock, JSON.stringify({ pid: process.ppid, id: 'x', boot, started }));
    assert.throws(() => lockUrgentFeeFile(path), { code: 'MINER_RUNNING' }, 'that very process: live');
    writeFileSync(lock, JSON.stringify({ pid: process.ppid, id: 'x', boot, started: `${started}1` }));
    lockUrgentFeeFile(path)();
    writeFileSync(lock, JSON.stringify({ pid: process.ppid, id: 'x', boot: 'before-reboot', started }));
    lockUrgentFeeFile(path)();
  });
});

// stop() released the lock while a pass was still on its way to a paying send: its save wrote this
// agent's stale view over the record a next agent had already taken and read.
test('once the lock is given up, a save no longer writes the record (nothing paid)', async () => {
  await withHome((path) => {
    const c = clock();
    const release = lockUrgentFeeFile(path);
    let held = true;
    const budget = openUrgentFeeBudget(
      path,
      'unc-test',
      BUDGET,
      () => {},
      c.now,
      () => held,
    );
    budget.charge(chipHex(0), 1n);
    assert.ok(budget.save());
    const before = readFileSync(path, 'utf8');
    held = false;
    release();
    budget.charge(chipHex(0), 2n);
    assert.equal(budget.save(), false, 'not saved: the send goes fee-free');
    assert.equal(budget.left(chipHex(0)), 0n);
    assert.equal(readFileSync(path, 'utf8'), before, 'the record as the next agent may have read it');
  });
});

// A save killed between its temporary file's creation and the rename left that file, a whole copy
// of the record, and nothing ever removed one: each crash of the agent left one more.
test("a killed save's temporary files are removed when the record is opened, nothing else", async () => {
  await withHome((path, dir) => {
    const old = new Date(Date.now() - 10 * 60_000);
    for (const name of ['urgent-fees.json.0123456789ab.tmp', 'urgent-fees.json.tmp', 'notes.txt']) {
      writeFileSync(join(dir, name), '{}\n');
      utimesSync(join(dir, name), old, old);
    }
    openUrgentFeeBudget(path, 'unc-test', BUDGET, () => {}, clock().now);
    assert.deepEqual(readdirSync(dir).sort(), ['notes.txt', 'urgent-fees.json.tmp']);
  });
});

// A record there but not readable at all (EIO, EMFILE, EACCES) was rewritten at once, with no copy
// (there were no bytes to copy): the other chains' spending in it was lost, and on those chains
// every chip had its whole budget back. A directory at the record's path makes the read fail for
// root too (EISDIR, where chmod 000 would not); replaced by the record, it stands for a read that
// failed once (at the start) and works at the next try.
// Named once relative to the working directory and once absolute, one record had two keys in
// the process's held locks: the second start found this pid in the lock file, took it for a
// process before this one with the same pid, and took the lock over.
test('the same record named two ways is one lock', async () => {
  await withHome((path) => {
    const release = lockUrgentFeeFile(relative(process.cwd(), path));
    try {
      assert.throws(() => lockUrgentFeeFile(path), { code: 'MINER_RUNNING' });
    } finally {
      release();
    }
    assert.deepEqual(readdirSync(join(path, '..')), [], 'released: nothing left behind');
  });
});

test('a record that exists but could not be read is not rewritten until it is read again and copied aside', async () => {
  await withHome((path, dir) => {
    const c = clock();
    const warnings: string[] = [];
    mkdirSync(path);
    writeFileSync(join(path, 'inside'), 'x');
    const budget = openUrgentFeeBudget(path, 'unc-test', BUDGET, (m) => warnings.push(m), c.now);
    assert.equal(budget.left(chipHex(0)), 0n, 'fail-closed: every chip spent for the hour');
    assert.equal(budget.save(), false, 'still unread: no save, so no fee is paid');
    assert.deepEqual(readdirSync(path), ['inside']);
    assert.deepEqual(copiesIn(dir), []);

    // Readable now: another chain's spending of the last hour is in it.
    rmSync(path, { recursive: true });
    const other = { spent: { [chipHex(1)]: [[c.t - 1000, '7']] } };
    const text = `${JSON.stringify({ version: 2, chainId: 'unc-other', ...other })}\n`;
    writeFileSync(path, text);
    assert.equal(budget.save(), true);
    const [copy] = copiesIn(dir);
    assert.ok(copy, 'copied aside before the rewrite');
    assert.equal(readFileSync(join(dir, copy), 'utf8'), text);
    const rewritten = JSON.parse(readFileSync(path, 'utf8'));
    assert.equal(rewritten.chainId, 'unc-test');
    assert.deepEqual(rewritten.others['unc-other'], other, "the other chain's record is kept");
    assert.equal(budget.left(chipHex(0)), 0n, 'this chain still counted all spent');
    assert.match(warnings[0]!, /unreadable .*only once it can be read/);
    assert.match(warnings[1]!, /not saved \(the record could not be read to be kept aside: .*EISDIR/);
  });
});
