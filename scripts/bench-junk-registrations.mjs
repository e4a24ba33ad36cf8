// Junk registrations against a built tree (its dist): 2,000 paying dev-soft registerChip
// transactions with forged signatures (8 senders, nonce 0) through mempool admission, then all of
// them as one proposal's candidates (what a pool that admitted them hands a proposer). Prints what
// was admitted, how many were executed and rejected, and CPU per item. Counts decide; the CPU
// figures move with load. Usage: node scripts/bench-junk-registrations.mjs <tree> (e.g. . or a
// baseline worktree).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const wt = resolve(process.argv[2] ?? '.');
const core = await import(join(wt, 'packages/core/dist/src/index.js'));
const { Chain } = await import(join(wt, 'packages/node/dist/src/chain.js'));
const { Mempool } = await import(join(wt, 'packages/node/dist/src/mempool.js'));
const dev = await import(join(wt, 'packages/node/dist/src/dev.js'));
const { silentLogger } = await import(join(wt, 'packages/node/dist/src/log.js'));
const { ChainDb } = await import(join(wt, 'packages/node/dist/src/storage/db.js'));
const N = 2000;
const time = new Date('2026-01-01T00:00:00Z');
const gj = dev.devGenesisJson({ time });
const genesis = core.parseGenesis(gj);
const dir = mkdtempSync(join(tmpdir(), 'regadmit-bench-'));
const db = await ChainDb.open(dir);
const chain = await Chain.open(db, gj, silentLogger);
const v = dev.devValidator();
const key = { seed: v.seed, publicKey: core.ed25519PublicKey(v.seed) };
const t0 = BigInt(time.getTime());
await chain.proposeAndCommit([], chain.nextBlockTime(t0 + 1000n), key, () => false);
const anchorHash = chain.tip.hash;
const junk = [];
for (let i = 0; i < N; i++) {
  const owner = dev.devKey(1 + (i % 8));
  const seed = core.sha256(core.utf8(`junk ${i}`));
  const sig = core.ed25519Sign(seed, core.registrationMessage(genesis.chainId, owner.address, anchorHash));
  sig[0] ^= 1;
  const base = {
    chainId: genesis.chainId,
    signer: owner.publicKey,
    nonce: 0n,
    expiresAt: 50n,
    fee: 0n,
    actions: [
      {
        type: 'registerChip',
        anchorHeight: 1n,
        evidence: {
          type: 'dev-soft',
          vendorId: 'dev',
          publicKey: core.ed25519PublicKey(seed),
          modelId: dev.DEV_MODELS[0].modelId,
          signature: sig,
        },
      },
    ],
  };
  const size = core.encode(core.signedTransactionCodec, { tx: base, signature: new Uint8Array(64) }).length;
  junk.push(
    core.envelopeFromSigned(
      core.signTransaction({ ...base, fee: 10n * core.minimumFee(genesis.params, size, 1) }, owner.seed),
    ),
  );
}
// Admission (head state), CPU per tx.
const pool = new Mempool();
const next = {
  chainId: genesis.chainId,
  height: 2n,
  time: chain.nextBlockTime(t0 + 2000n),
  proposer: key.publicKey,
  prevHash: chain.tip.hash,
  prevBeacon: chain.tip.header.beacon,
};
let admitted = 0;
let c = process.cpuUsage();
const codes = new Map();
for (const env of junk) {
  try {
    pool.add(env, chain.tipState, genesis.params, next);
    admitted++;
  } catch (e) {
    codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
  }
}
c = process.cpuUsage(c);
console.log(
  `admission: ${admitted}/${N} junk admitted (refusals ${JSON.stringify([...codes])}), ${((c.user + c.system) / N).toFixed(1)} µs CPU per tx`,
);
// Proposal build with every junk tx as a candidate (what main's pool hands a proposer).
c = process.cpuUsage();
const { rejected } = chain.buildProposal(junk, chain.nextBlockTime(t0 + 2000n), key, () => false);
c = process.cpuUsage(c);
console.log(
  `proposal: ${rejected.length} junk executed and rejected, ${((c.user + c.system) / 1000).toFixed(1)} ms CPU`,
);
await db.close();
rmSync(dir, { recursive: true, force: true });
