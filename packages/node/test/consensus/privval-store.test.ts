import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  type Block,
  blockCodec,
  blockHash,
  bytes as bytesCodec,
  type Commit,
  commitCodec,
  decode,
  encode,
  equalBytes,
  fromHex,
  initialPrivValidatorState,
  PrivValidator,
  type Proposal,
  sha256,
  struct,
  toHex,
  utf8,
  voteCodec,
} from '@unc/core';
import fc from 'fast-check';
import { encodeBlock } from '../../src/block-bytes.js';
import {
  filePrivvalStorage,
  loadPrivval,
  MAX_UNDELETED_RECORDS,
  type PrivValidatorFile,
  parsePrivval,
  proposalRecordBytes,
  recordEncoding,
  type SignedProposalRecord,
  savePrivval,
  serializePrivval,
  storePrivval,
  UndeletedRecords,
} from '../../src/consensus/privval-store.js';

function record(height: bigint, txs: number): SignedProposalRecord {
  const hash = (b: number) => new Uint8Array(32).fill(b);
  const lastCommit: Commit = { height: height - 1n, round: 0, blockHash: hash(1), signatures: [] };
  const block: Block = {
    header: {
      chainId: 'unc-test',
      height,
      time: 1_000n + height,
      prevHash: hash(1),
      stateRoot: hash(2),
      txRoot: hash(3),
      proposer: hash(4),
      beacon: hash(5),
      vrfProof: new Uint8Array(80).fill(6),
      lastCommitHash: hash(7),
    },
    txs: Array.from({ length: txs }, (_, i) => new Uint8Array(100).fill(i % 256)),
    commit: { height, round: 0, blockHash: hash(8), signatures: [] },
  };
  const proposal: Proposal = {
    height,
    round: 0,
    polRound: -1,
    blockHash: hash(8),
    proposer: hash(4),
    signature: new Uint8Array(64).fill(9),
  };
  return { proposal, block, lastCommit };
}

/** The state file's text read back, its record (if any) given by name as a storage would. */
function roundTrip(f: PrivValidatorFile): PrivValidatorFile {
  const rec = f.lastProposal ? proposalRecordBytes(f.lastProposal) : null;
  return parsePrivval(serializePrivval(f), (name) => (rec && rec.name === name ? rec.bytes : null));
}

test('the signer file holds each record as written, whether its encoding was kept or not', () => {
  const first = record(5n, 3);
  const second = record(6n, 4);
  const state = { ...initialPrivValidatorState(), height: 5n, step: 1 };
  const a = roundTrip({ publicKey: 'ab', state, lastProposal: first });
  // The same record again, with the state a vote later: the kept encoding, the new state.
  const b = roundTrip({ publicKey: 'ab', state: { ...state, step: 2 }, lastProposal: first });
  // Another record: its own block, never the one encoded before.
  const c = roundTrip({ publicKey: 'ab', state: { ...state, height: 6n }, lastProposal: second });
  assert.deepEqual(a.lastProposal, first);
  assert.deepEqual(b.lastProposal, first);
  assert.equal(b.state.step, 2);
  assert.deepEqual(c.lastProposal, second);
  assert.equal(c.lastProposal!.block.txs.length, 4);
  assert.equal(c.state.height, 6n);
});

test('a record changed in place after a write is written as it is now, never as it was first encoded', () => {
  const rec = record(7n, 3);
  const state = { ...initialPrivValidatorState(), height: 7n, step: 1 };
  const file = (s = state) => ({ publicKey: 'ab', state: s, lastProposal: rec });
  assert.deepEqual(roundTrip(file()).lastProposal, record(7n, 3));
  // The same record object now holds a re-proposal at a later round, signed anew...
  rec.proposal = { ...rec.proposal, round: 1, polRound: 0, signature: new Uint8Array(64).fill(0xaa) };
  let back = roundTrip(file({ ...state, round: 1 })).lastProposal!;
  assert.equal(back.proposal.round, 1);
  assert.deepEqual(back.proposal.signature, new Uint8Array(64).fill(0xaa));
  // ...a field of the proposal changed on the object itself...
  rec.proposal.round = 2;
  back = roundTrip(file({ ...state, round: 2 })).lastProposal!;
  assert.equal(back.proposal.round, 2);
  // ...and another block and last commit.
  const other = record(7n, 5);
  rec.block = other.block;
  rec.lastCommit = { ...other.lastCommit, round: 3 };
  back = roundTrip(file()).lastProposal!;
  assert.equal(back.block.txs.length, 5);
  assert.equal(back.lastCommit.round, 3);
  assert.deepEqual(back, rec);
});

test('the signer file on disk: what a restart reads back is exactly the record and state last written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xab);
    const first = record(9n, 2);
    const second = record(10n, 6);
    const state = { ...initialPrivValidatorState(), height: 9n, step: 1 };
    const storage = filePrivvalStorage(path);
    // Several writes, the kept encodings reused in between, as a validator votes along.
    storePrivval(storage, { publicKey: toHex(key), state, lastProposal: first });
    storePrivval(storage, { publicKey: toHex(key), state: { ...state, step: 2 }, lastProposal: first });
    const last = { ...state, height: 10n, step: 3, signature: new Uint8Array(64).fill(3) };
    storePrivval(storage, { publicKey: toHex(key), state: last, lastProposal: second });
    const back = loadPrivval(path, key)!;
    assert.deepEqual(back.lastProposal, second);
    assert.deepEqual(back.state, last);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the block is written once per proposal, not at each of the height's signatures, and older ones are deleted", () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = toHex(new Uint8Array(32).fill(0xab));
    const big = record(20n, 2_000);
    const storage = filePrivvalStorage(path);
    const writes: string[] = [];
    const counted = {
      ...storage,
      writeRecord: (n: string, b: Uint8Array) => {
        writes.push(n);
        storage.writeRecord(n, b);
      },
    };
    const state = { ...initialPrivValidatorState(), height: 20n };
    for (const step of [1, 2, 3])
      storePrivval(counted, { publicKey: key, state: { ...state, step }, lastProposal: big });
    const records = readdirSync(dir).filter((f) => f.includes('.proposal-'));
    assert.equal(records.length, 1);
    const recordFile = join(dir, records[0]!);
    // The state file names the block; it does not hold it (it was 2 MB of hex per signature).
    assert.ok(statSync(path).size < 4_000, `state file ${statSync(path).size} bytes`);
    assert.ok(statSync(recordFile).size > 200_000);
    assert.deepEqual(loadPrivval(path, fromHex(key))!.lastProposal, big);
    // The next height's proposal: a new record, the old one gone.
    const next = record(21n, 3);
    storePrivval(counted, { publicKey: key, state: { ...state, height: 21n, step: 1 }, lastProposal: next });
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.proposal-')),
      [`privval.json.proposal-${proposalRecordBytes(next).name}`],
    );
    assert.equal(new Set(writes).size, 2);
    assert.deepEqual(loadPrivval(path, fromHex(key))!.lastProposal, next);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a state file whose record is missing or altered is refused, never read as "no proposal"', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xab);
    const rec = record(30n, 4);
    storePrivval(filePrivvalStorage(path), {
      publicKey: toHex(key),
      state: { ...initialPrivValidatorState(), height: 30n, step: 1 },
      lastProposal: rec,
    });
    const recordFile = join(dir, `privval.json.proposal-${proposalRecordBytes(rec).name}`);
    const bytes = readFileSync(recordFile);
    bytes[bytes.length - 1]! ^= 1;
    writeFileSync(recordFile, bytes);
    assert.throws(() => loadPrivval(path, key), /does not match its hash\); refusing to sign/);
    rmSync(recordFile);
    // The operator is told which file is missing, where it belongs, and what to do.
    assert.throws(
      () => loadPrivval(path, key),
      (err: Error) =>
        err.message.includes(`the record file ${recordFile} it names`) &&
        /is missing \(keep it with privval\.json\b.*\); refusing to sign/.test(err.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the recovery the missing-record error offers (lastProposal set to null) still refuses a conflicting proposal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const seed = sha256(utf8('privval recovery test'));
    const signer = new PrivValidator(seed, 'unc-test');
    const rec = record(30n, 4);
    const unsigned = {
      height: 30n,
      round: 0,
      polRound: -1,
      blockHash: rec.proposal.blockHash,
      proposer: signer.publicKey,
    };
    const proposal = signer.signProposal(unsigned)!;
    storePrivval(filePrivvalStorage(path), {
      publicKey: toHex(signer.publicKey),
      state: signer.state,
      lastProposal: { ...rec, proposal },
    });
    rmSync(join(dir, `privval.json.proposal-${proposalRecordBytes({ ...rec, proposal }).name}`));
    assert.throws(() => loadPrivval(path, signer.publicKey), /setting "lastProposal" to null/);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    json.lastProposal = null;
    writeFileSync(path, JSON.stringify(json));
    const back = loadPrivval(path, signer.publicKey)!;
    assert.equal(back.lastProposal, null);
    const restarted = new PrivValidator(seed, 'unc-test', back.state);
    assert.equal(restarted.signProposal({ ...unsigned, blockHash: new Uint8Array(32).fill(0xee) }), null);
    assert.deepEqual(restarted.signProposal(unsigned)?.signature, proposal.signature);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A write may store fewer bytes than it was given without any error (a full disk, a quota, the
 * file size limit); only the next one fails. Here a child process saves, under a 64 KiB file size
 * limit, a proposal whose record is ~200 KB: the save must fail and leave the earlier state and
 * record whole, never a truncated record renamed under its hash and named by the state (a signer
 * that keeps signing, then refuses to start).
 */
test('a short write fails the save: the state never names a truncated record', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xab);
    const before = record(50n, 2);
    const state = { ...initialPrivValidatorState(), height: 50n, step: 1 };
    storePrivval(filePrivvalStorage(path), { publicKey: toHex(key), state, lastProposal: before });
    const store = new URL('../../src/consensus/privval-store.js', import.meta.url).href;
    const child = `
      import { filePrivvalStorage, storePrivval } from ${JSON.stringify(store)};
      const h32 = (b) => new Uint8Array(32).fill(b);
      const header = {
        chainId: 'unc-test', height: 51n, time: 1051n, prevHash: h32(1), stateRoot: h32(2), txRoot: h32(3),
        proposer: h32(4), beacon: h32(5), vrfProof: new Uint8Array(80).fill(6), lastCommitHash: h32(7),
      };
      const block = { header, txs: Array.from({ length: 2000 }, (_, i) => new Uint8Array(100).fill(i % 256)),
        commit: { height: 51n, round: 0, blockHash: h32(8), signatures: [] } };
      const proposal = { height: 51n, round: 0, polRound: -1, blockHash: h32(8), proposer: h32(4), signature: new Uint8Array(64).fill(9) };
      const lastCommit = { height: 50n, round: 0, blockHash: h32(1), signatures: [] };
      const state = { height: 51n, round: 0, step: 1, signBytes: null, signature: null, lock: null, votes: [] };
      try {
        storePrivval(filePrivvalStorage(${JSON.stringify(path)}), { publicKey: ${JSON.stringify(toHex(key))}, state, lastProposal: { proposal, block, lastCommit } });
        console.log('saved');
      } catch (err) {
        console.log('failed ' + err.code);
      }
    `;
    const proc = spawn('bash', ['-c', 'ulimit -f 64 && exec "$NODE" --input-type=module -e "$CHILD"'], {
      env: { ...process.env, NODE: process.execPath, CHILD: child },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => proc.on('exit', (c) => resolve(c)));
    assert.equal(code, 0);
    assert.equal(out.trim(), 'failed EFBIG');
    const back = loadPrivval(path, key)!;
    assert.deepEqual(back.state, state);
    assert.deepEqual(back.lastProposal, before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a file found under a record's name is not trusted: a restarted signer writes the record whole again", () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xab);
    const rec = record(31n, 4);
    const state = { ...initialPrivValidatorState(), height: 31n, step: 1 };
    storePrivval(filePrivvalStorage(path), { publicKey: toHex(key), state, lastProposal: rec });
    // A damaged (or copied-in, or short-written) file under the name of the record being saved...
    const recordFile = join(dir, `privval.json.proposal-${proposalRecordBytes(rec).name}`);
    writeFileSync(recordFile, readFileSync(recordFile).subarray(0, 100));
    // ...and a restarted process signs the next step of the same proposal.
    storePrivval(filePrivvalStorage(path), {
      publicKey: toHex(key),
      state: { ...state, step: 2 },
      lastProposal: rec,
    });
    const back = loadPrivval(path, key)!;
    assert.equal(back.state.step, 2);
    assert.deepEqual(back.lastProposal, rec);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('leftovers of an interrupted save (temporary files, a record the state never named) neither stop a restart nor stay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xab);
    const rec = record(32n, 4);
    const state = { ...initialPrivValidatorState(), height: 32n, step: 1 };
    storePrivval(filePrivvalStorage(path), { publicKey: toHex(key), state, lastProposal: rec });
    const name = proposalRecordBytes(rec).name;
    const unnamed = proposalRecordBytes(record(33n, 2));
    writeFileSync(join(dir, 'privval.json.tmp'), '{"half a state');
    writeFileSync(join(dir, 'privval.json.0123456789ab.tmp'), '{"half a state');
    writeFileSync(join(dir, `privval.json.proposal-${unnamed.name}.tmp`), unnamed.bytes.subarray(0, 10));
    writeFileSync(join(dir, `privval.json.proposal-${unnamed.name}`), unnamed.bytes);
    const back = loadPrivval(path, key)!;
    assert.deepEqual(back.lastProposal, rec);
    storePrivval(filePrivvalStorage(path), {
      publicKey: toHex(key),
      state: { ...state, step: 2 },
      lastProposal: rec,
    });
    assert.deepEqual(readdirSync(dir).sort(), ['privval.json', `privval.json.proposal-${name}`]);
    assert.equal(loadPrivval(path, key)!.state.step, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a state file of the earlier format (the block inline, in hex) is still read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xab);
    const rec = record(40n, 3);
    const state = { ...initialPrivValidatorState(), height: 40n, step: 2 };
    const json = JSON.parse(serializePrivval({ publicKey: toHex(key), state, lastProposal: rec }));
    json.lastProposal = {
      proposal: json.lastProposal.proposal,
      block: toHex(encodeBlock(rec.block)),
      lastCommit: toHex(encode(commitCodec, rec.lastCommit)),
    };
    savePrivval(path, JSON.stringify(json));
    const back = loadPrivval(path, key)!;
    assert.deepEqual(back.lastProposal, rec);
    assert.deepEqual(back.state, state);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The double-signing protection across real crashes: a child process signs proposals and votes as
 * a validator does (save, then release) and kills itself with SIGKILL right after the k-th storage
 * operation (a record written, the state file written, the old records deleted), for every k. Each
 * time the restarted signer must load (no refusal), hold every signature the child released, and
 * refuse a conflicting proposal or vote for the last released slot; the last released proposal's
 * block must be there to present again.
 */
test('SIGKILL after each step of a save: a restart never signs a conflicting proposal or vote, and keeps its block', async () => {
  const core = import.meta.resolve('@unc/core');
  const store = new URL('../../src/consensus/privval-store.js', import.meta.url).href;
  const seed = sha256(utf8('privval crash test'));
  const chainId = 'unc-test';
  const run = async (dir: string, crashAt: number) => {
    const proc = spawn(
      process.execPath,
      ['--input-type=module', '-e', crashChild(core, store, dir, crashAt)],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
      proc.on('exit', (_c, s) => resolve(s)),
    );
    return { signal, lines: out.split('\n').filter(Boolean) };
  };
  const whole = mkdtempSync(join(tmpdir(), 'unc-privval-crash-'));
  let totalOps: number;
  try {
    const { signal, lines } = await run(whole, 0);
    assert.equal(signal, null);
    totalOps = Number(lines.at(-1)!.split(' ')[1]);
    assert.ok(totalOps >= 15, `ops ${totalOps}`);
  } finally {
    rmSync(whole, { recursive: true, force: true });
  }
  for (let k = 1; k < totalOps; k++) {
    const dir = mkdtempSync(join(tmpdir(), 'unc-privval-crash-'));
    try {
      const { signal, lines } = await run(dir, k);
      assert.equal(signal, 'SIGKILL', `crash point ${k}`);
      const released = lines.filter((l) => l.startsWith('released '));
      const stored = loadPrivval(join(dir, 'privval.json'), ed25519Key(seed));
      if (released.length === 0) continue;
      assert.ok(stored, `crash point ${k}: the state is there`);
      const signer = new PrivValidator(seed, chainId, stored.state);
      const [, kind, h, r, hash] = released.at(-1)!.split(' ');
      const height = BigInt(h!);
      const round = Number(r);
      const other = new Uint8Array(32).fill(0xee);
      assert.ok(!equalBytes(other, fromHex(hash!)));
      if (kind === 'proposal') {
        const conflicting = signer.signProposal({
          height,
          round,
          polRound: -1,
          blockHash: other,
          proposer: signer.publicKey,
        });
        assert.equal(conflicting, null, `crash point ${k}: a second proposal for ${h}/${r}`);
      } else {
        const conflicting = signer.signVote({
          type: kind as 'prevote' | 'precommit',
          height,
          round,
          blockHash: other,
          validator: signer.publicKey,
        });
        assert.equal(conflicting, null, `crash point ${k}: a second ${kind} for ${h}/${r}`);
      }
      // The last released proposal, with its block, is what the restarted node can present (or a
      // later one, saved before the crash came and not yet released).
      const lastProposal = released.filter((l) => l.startsWith('released proposal ')).at(-1)!;
      const [, , ph, , phash] = lastProposal.split(' ');
      const own = stored.lastProposal;
      assert.ok(own, `crash point ${k}: the last proposal is kept`);
      assert.ok(own.proposal.height >= BigInt(ph!), `crash point ${k}: an older proposal kept`);
      if (own.proposal.height === BigInt(ph!)) assert.equal(toHex(own.proposal.blockHash), phash);
      assert.deepEqual(blockHash(own.block.header), own.proposal.blockHash);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

function ed25519Key(seed: Uint8Array): Uint8Array {
  return new PrivValidator(seed, 'unc-test').publicKey;
}

/** The child: signs three heights as a proposer (proposal, prevote, precommit), saving before each release. */
function crashChild(core: string, store: string, dir: string, crashAt: number): string {
  return `
    import { writeSync } from 'node:fs';
    import { join } from 'node:path';
    import { blockHash, PrivValidator, sha256, toHex, utf8 } from ${JSON.stringify(core)};
    import { filePrivvalStorage, loadPrivval, storePrivval } from ${JSON.stringify(store)};
    const path = join(${JSON.stringify(dir)}, 'privval.json');
    const seed = sha256(utf8('privval crash test'));
    const real = filePrivvalStorage(path);
    let ops = 0;
    const step = () => { if (++ops === ${crashAt}) process.kill(process.pid, 'SIGKILL'); };
    const storage = {
      ...real,
      write: (t) => { real.write(t); step(); },
      writeRecord: (n, b) => { real.writeRecord(n, b); step(); },
      pruneRecords: (k) => { real.pruneRecords(k); step(); },
    };
    const signer = new PrivValidator(seed, 'unc-test');
    const say = (line) => writeSync(1, line + '\\n');
    let lastProposal = null;
    const save = () => storePrivval(storage, { publicKey: toHex(signer.publicKey), state: signer.state, lastProposal });
    const h32 = (b) => new Uint8Array(32).fill(b);
    for (let height = 1n; height <= 3n; height++) {
      const lastCommit = { height: height - 1n, round: 0, blockHash: h32(1), signatures: [] };
      const header = {
        chainId: 'unc-test', height, time: 1000n + height, prevHash: h32(1), stateRoot: h32(2), txRoot: h32(3),
        proposer: signer.publicKey, beacon: h32(5), vrfProof: new Uint8Array(80).fill(6), lastCommitHash: h32(7),
      };
      const hash = blockHash(header);
      const block = { header, txs: Array.from({ length: 50 }, (_, i) => new Uint8Array(100).fill(i)), commit: { height, round: 0, blockHash: hash, signatures: [] } };
      const proposal = signer.signProposal({ height, round: 0, polRound: -1, blockHash: hash, proposer: signer.publicKey });
      lastProposal = { proposal, block, lastCommit };
      save();
      say('released proposal ' + height + ' 0 ' + toHex(hash));
      for (const type of ['prevote', 'precommit']) {
        signer.signVote({ type, height, round: 0, blockHash: hash, validator: signer.publicKey });
        save();
        say('released ' + type + ' ' + height + ' 0 ' + toHex(hash));
      }
    }
    say('ops ' + ops);
  `;
}

test('an old proposal record that cannot be deleted does not fail the save: the state is durable, the delete is tried again at the next save', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = toHex(new Uint8Array(32).fill(0xcd));
    const state = { ...initialPrivValidatorState(), height: 40n, step: 1 };
    const first = record(40n, 3);
    const second = record(41n, 2);
    storePrivval(filePrivvalStorage(path), { publicKey: key, state, lastProposal: first });
    // The old record made undeletable, as root too: a non-empty directory under its name (unlink
    // fails with EISDIR, as a busy or read-only file fails with EBUSY, EACCES or EROFS).
    const old = join(dir, `privval.json.proposal-${proposalRecordBytes(first).name}`);
    rmSync(old);
    mkdirSync(old);
    writeFileSync(join(old, 'pinned'), 'x');
    const failures: Error[] = [];
    const next = { ...state, height: 41n };
    storePrivval(filePrivvalStorage(path), { publicKey: key, state: next, lastProposal: second }, (err) =>
      failures.push(err),
    );
    assert.equal(failures.length, 1, 'the failed delete is reported (the driver logs it)');
    assert.match(failures[0]!.message, new RegExp(`proposal-${proposalRecordBytes(first).name}`));
    const back = loadPrivval(path, fromHex(key))!;
    assert.equal(back.state.height, 41n, 'the new state is on disk');
    assert.equal(toHex(back.lastProposal!.proposal.signature), toHex(second.proposal.signature));
    // Without a reporter, the save still succeeds; once the file can go, the next save deletes it.
    storePrivval(filePrivvalStorage(path), {
      publicKey: key,
      state: { ...next, step: 2 },
      lastProposal: second,
    });
    // The obstruction gone (a busy file freed): a plain stale file, which the next save deletes.
    rmSync(old, { recursive: true });
    writeFileSync(old, 'stale record');
    storePrivval(filePrivvalStorage(path), {
      publicKey: key,
      state: { ...next, step: 3 },
      lastProposal: second,
    });
    assert.equal(existsSync(old), false, 'deleted at the next save');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failure before the state is durable still fails the save, and the old state stays', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = toHex(new Uint8Array(32).fill(0xce));
    const state = { ...initialPrivValidatorState(), height: 50n, step: 1 };
    storePrivval(filePrivvalStorage(path), { publicKey: key, state, lastProposal: record(50n, 2) });
    const next = record(51n, 2);
    // The new record cannot be written
    // (Its own name is taken by a non-empty directory: the rename into place fails.)
    const taken = join(dir, `privval.json.proposal-${proposalRecordBytes(next).name}`);
    mkdirSync(taken);
    writeFileSync(join(taken, 'pinned'), 'x');
    const failures: Error[] = [];
    assert.throws(() =>
      storePrivval(
        filePrivvalStorage(path),
        { publicKey: key, state: { ...state, height: 51n }, lastProposal: next },
        (err) => failures.push(err),
      ),
    );
    assert.equal(failures.length, 0);
    assert.equal(loadPrivval(path, fromHex(key))!.state.height, 50n);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('old proposal records that can never be deleted do not fill the disk: past MAX_UNDELETED_RECORDS the save fails, and the report stays short', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = toHex(new Uint8Array(32).fill(0xcf));
    const state = { ...initialPrivValidatorState(), height: 60n, step: 1 };
    // Records whose delete fails every time (a policy that forbids it), one per earlier proposal:
    // non-empty directories under record names fail unlink with EISDIR, as root too.
    const pin = (i: number) => {
      const stuck = join(dir, `privval.json.proposal-${i.toString(16).padStart(64, '0')}`);
      mkdirSync(stuck);
      writeFileSync(join(stuck, 'pinned'), 'x');
    };
    for (let i = 0; i < MAX_UNDELETED_RECORDS; i++) pin(i);
    const failures: Error[] = [];
    storePrivval(filePrivvalStorage(path), { publicKey: key, state, lastProposal: record(60n, 2) }, (err) =>
      failures.push(err),
    );
    assert.equal(failures.length, 1, 'up to the bound: reported, signing goes on');
    assert.ok(failures[0] instanceof UndeletedRecords);
    assert.equal((failures[0] as UndeletedRecords).failures.length, MAX_UNDELETED_RECORDS);
    // Logged at every save: it names a few and counts the rest, whatever their number.
    assert.ok(failures[0]!.message.length < 1_000, `a ${failures[0]!.message.length}-character report`);
    assert.match(failures[0]!.message, new RegExp(`and ${MAX_UNDELETED_RECORDS - 3} more`));
    // One more left behind (the next proposal's old record cannot go either): the save fails.
    pin(MAX_UNDELETED_RECORDS);
    assert.throws(
      () =>
        storePrivval(
          filePrivvalStorage(path),
          { publicKey: key, state: { ...state, height: 61n }, lastProposal: record(61n, 2) },
          (err) => failures.push(err),
        ),
      /signing stops/,
    );
    assert.equal(failures.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('temporary files of interrupted saves that cannot be deleted are reported, never counted as old records that stop signing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = toHex(new Uint8Array(32).fill(0xd0));
    const state = { ...initialPrivValidatorState(), height: 70n, step: 1 };
    // Undeletable (non-empty directories: unlink fails with EISDIR, as root too).
    const pin = (name: string) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'pinned'), 'x');
    };
    // Old records up to the bound, which alone let signing go on...
    for (let i = 0; i < MAX_UNDELETED_RECORDS; i++)
      pin(`privval.json.proposal-${i.toString(16).padStart(64, '0')}`);
    // ...and more temporary files than the bound: the state file's (random and older fixed names)
    // and a record's. They were counted as old records: signing stopped.
    pin('privval.json.tmp');
    for (let i = 0; i < MAX_UNDELETED_RECORDS; i++)
      pin(`privval.json.${i.toString(16).padStart(12, '0')}.tmp`);
    pin(`privval.json.proposal-${'e'.repeat(64)}.0123456789ab.tmp`);
    const failures: Error[] = [];
    storePrivval(filePrivvalStorage(path), { publicKey: key, state, lastProposal: record(70n, 2) }, (err) =>
      failures.push(err),
    );
    assert.equal(failures.length, 1, 'reported (the driver logs it), and the save went through');
    const err = failures[0] as UndeletedRecords;
    assert.ok(err instanceof UndeletedRecords);
    assert.equal(err.failures.length, MAX_UNDELETED_RECORDS);
    assert.equal(err.temporaries.length, MAX_UNDELETED_RECORDS + 2);
    assert.match(err.message, /16 old proposal record\(s\) not deleted/);
    assert.match(err.message, /18 temporary file\(s\) of interrupted saves not deleted/);
    assert.ok(err.message.length < 2_000, `a ${err.message.length}-character report`);
    assert.equal(loadPrivval(path, fromHex(key))!.state.height, 70n);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The record's codec as privval-store.ts declares it, for the bytes a record had before it was assembled in place. */
const recordCodecAsDeclared = struct<{ block: Uint8Array; lastCommit: Uint8Array }>('PrivvalProposalRecord', {
  block: bytesCodec(0xffff_ffff, 'block'),
  lastCommit: bytesCodec(0xffff_ffff, 'lastCommit'),
});

test("a record assembled in one array is the codec's encoding of the block and last commit, byte for byte", () => {
  fc.assert(
    fc.property(
      fc.bigInt({ min: 1n, max: 2n ** 63n }),
      fc.array(fc.uint8Array({ maxLength: 400 }), { maxLength: 30 }),
      fc.array(
        fc.record({
          validator: fc.uint8Array({ minLength: 32, maxLength: 32 }),
          signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
        }),
        { maxLength: 5 },
      ),
      fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      (height, txs, signatures, round) => {
        const r = record(height, 0);
        r.block.txs = txs;
        r.lastCommit = { ...r.lastCommit, round, signatures };
        const want = encode(recordCodecAsDeclared, {
          block: encode(blockCodec, r.block),
          lastCommit: encode(commitCodec, r.lastCommit),
        });
        assert.deepEqual(recordEncoding(r.block, r.lastCommit), want);
        // The block's transaction-list encoding is kept per list: a second record of the same block
        // with another last commit must still be the codec's bytes.
        const other = { ...r.lastCommit, round: (round + 1) % 2 ** 32 };
        const want2 = encode(recordCodecAsDeclared, {
          block: encode(blockCodec, r.block),
          lastCommit: encode(commitCodec, other),
        });
        assert.deepEqual(recordEncoding(r.block, other), want2);
        const back = decode(recordCodecAsDeclared, recordEncoding(r.block, other));
        assert.deepEqual(decode(blockCodec, back.block), decode(blockCodec, encode(blockCodec, r.block)));
      },
    ),
    { numRuns: 200 },
  );
});

test('attack: a state file whose round or step is missing or not a small integer is refused, never read as a signer that may sign the slot again', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const seed = sha256(utf8('privval damaged slot test'));
    const signer = new PrivValidator(seed, 'unc-test');
    const vote = (blockHash: Uint8Array) =>
      ({ type: 'prevote', height: 40n, round: 2, blockHash, validator: signer.publicKey }) as const;
    assert.ok(signer.signVote(vote(new Uint8Array(32).fill(1))));
    storePrivval(filePrivvalStorage(path), {
      publicKey: toHex(signer.publicKey),
      state: signer.state,
      lastProposal: null,
    });
    const written = JSON.parse(readFileSync(path, 'utf8'));
    const damaged: [string, unknown][] = [
      ['step', undefined],
      ['step', null],
      ['step', 'prevote'],
      ['step', 1.5],
      ['step', -1],
      ['step', 9],
      ['round', undefined],
      ['round', null],
      ['round', 'two'],
      ['round', -1],
      ['round', 2.5],
      ['votes', undefined],
    ];
    for (const [field, value] of damaged) {
      const json = { ...written, [field]: value };
      if (value === undefined) delete json[field];
      writeFileSync(path, JSON.stringify(json));
      let restored: PrivValidator;
      try {
        restored = new PrivValidator(seed, 'unc-test', loadPrivval(path, signer.publicKey)!.state);
      } catch (err) {
        assert.match((err as Error).message, /refusing to sign/, `${field}: ${String(value)}`);
        continue;
      }
      // Read at all, it must still refuse a second, different prevote for the slot it signed.
      assert.equal(
        restored.signVote(vote(new Uint8Array(32).fill(2))),
        null,
        `${field} = ${JSON.stringify(value)} let the restarted signer prevote twice at 40/2`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("attack: a state file whose lock is missing, or whose kept votes are not this validator's at its height, is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const seed = sha256(utf8('privval kept votes test'));
    const signer = new PrivValidator(seed, 'unc-test');
    const other = new PrivValidator(sha256(utf8('another validator')), 'unc-test');
    const vote = (s: PrivValidator, height: bigint, type: 'prevote' | 'precommit', fill: number) =>
      s.signVote({
        type,
        height,
        round: 2,
        blockHash: new Uint8Array(32).fill(fill),
        validator: s.publicKey,
      })!;
    const earlier = vote(signer, 39n, 'precommit', 9);
    vote(signer, 40n, 'prevote', 1);
    vote(signer, 40n, 'precommit', 1);
    const stranger = vote(other, 40n, 'prevote', 2);
    storePrivval(filePrivvalStorage(path), {
      publicKey: toHex(signer.publicKey),
      state: signer.state,
      lastProposal: null,
    });
    const written = JSON.parse(readFileSync(path, 'utf8'));
    assert.ok(written.lock, 'the precommit at 40/2 is the lock');
    assert.equal(written.votes.length, 2);
    // As the node wrote it, it loads: its lock and its own votes of height 40.
    const loaded = loadPrivval(path, signer.publicKey)!;
    assert.equal(loaded.state.lock?.height, 40n);
    const hexOf = (v: typeof earlier) => toHex(encode(voteCodec, v));
    const damaged: [string, unknown][] = [
      // Read as "no lock": the restarted validator could prevote another block at 40.
      ['lock', undefined],
      ['lock', ''],
      ['lock', false],
      ['lock', hexOf(earlier)],
      ['lock', hexOf(stranger)],
      // Taken back by the machine as its own votes, unchecked.
      ['votes', [...written.votes, hexOf(stranger)]],
      ['votes', [hexOf(earlier), ...written.votes]],
    ];
    for (const [field, value] of damaged) {
      const json = { ...written, [field]: value };
      if (value === undefined) delete json[field];
      writeFileSync(path, JSON.stringify(json));
      assert.throws(
        () => loadPrivval(path, signer.publicKey),
        /refusing to sign/,
        `${field} = ${JSON.stringify(value)} was read`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attack: a link planted at a temporary name of the signer file is never written through, and a failed save leaves no temporary file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'unc-privval-'));
  try {
    const path = join(dir, 'privval.json');
    const key = new Uint8Array(32).fill(0xd1);
    // The name older versions wrote at, every save: a link there sent the state into its target.
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'not the signer state\n');
    symlinkSync(victim, `${path}.tmp`);
    const state = { ...initialPrivValidatorState(), height: 70n, step: 1 };
    storePrivval(filePrivvalStorage(path), { publicKey: toHex(key), state, lastProposal: null });
    assert.equal(readFileSync(victim, 'utf8'), 'not the signer state\n');
    assert.equal(loadPrivval(path, key)!.state.height, 70n);
    // A rename refused (the state's name is a non-empty folder): the save fails, nothing is left.
    rmSync(path);
    mkdirSync(join(path, 'pinned'), { recursive: true });
    assert.throws(() => savePrivval(path, 'x'));
    assert.deepEqual(readdirSync(dir).sort(), ['privval.json', 'victim.txt']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
