/**
 * The Merkle tree of batch receipts (market/batch.ts): every job's proof leads to the root the
 * chip signs, and nothing else does: another leaf, another position, another batch size, a proof
 * with a hash too many or too few.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  BATCH_JOB_DONE,
  type BatchJobLeaf,
  type BatchReceipt,
  batchJobIdOf,
  batchLeafHash,
  batchResultsRoot,
  batchRootFromProof,
  batchTree,
  equalBytes,
  sha256,
  utf8,
  ValidationError,
  verifyBatchLeaf,
} from '../src/index.js';

const leafHashes = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => sha256(utf8(`leaf ${seed} ${i}`)));

describe('batch receipt Merkle tree', () => {
  test('every proof leads to the root, at its own index and batch size only', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 70 }), fc.integer(), (n, seed) => {
        const leaves = leafHashes(n, seed);
        const { root, proofs } = batchTree(leaves);
        assert.ok(equalBytes(root, batchResultsRoot(leaves)));
        for (let i = 0; i < n; i++) {
          assert.ok(equalBytes(batchRootFromProof(leaves[i]!, i, n, proofs[i]!), root));
          // Another leaf at this position leads elsewhere.
          const other = sha256(leaves[i]!);
          assert.ok(!equalBytes(batchRootFromProof(other, i, n, proofs[i]!), root));
          // The same leaf and proof at another position: refused or another root.
          if (n > 1) {
            const j = (i + 1) % n;
            let r: Uint8Array | null = null;
            try {
              r = batchRootFromProof(leaves[i]!, j, n, proofs[i]!);
            } catch (err) {
              assert.ok(err instanceof ValidationError);
            }
            if (r) assert.ok(!equalBytes(r, root));
          }
          // A hash too many is refused.
          assert.throws(() => batchRootFromProof(leaves[i]!, i, n, [...proofs[i]!, root]), /too long/);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('a list and the same list with its last leaf repeated have different roots', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer(), (n, seed) => {
        const leaves = leafHashes(n, seed);
        const longer = [...leaves, leaves[n - 1]!];
        assert.ok(!equalBytes(batchResultsRoot(leaves), batchResultsRoot(longer)));
      }),
      { numRuns: 40 },
    );
  });

  test('a batch of no jobs, or an index outside it, is refused', () => {
    assert.throws(() => batchResultsRoot([]), ValidationError);
    const leaves = leafHashes(3, 1);
    assert.throws(() => batchRootFromProof(leaves[0]!, 3, 3, []), ValidationError);
    assert.throws(() => batchRootFromProof(leaves[0]!, -1, 3, []), ValidationError);
  });

  test("verifyBatchLeaf binds the job's id, index and outcome to the receipt", () => {
    const batchId = sha256(utf8('batch'));
    const leaves: BatchJobLeaf[] = Array.from({ length: 5 }, (_, i) => ({
      index: i,
      jobId: batchJobIdOf(batchId, i),
      inputHash: sha256(utf8(`in ${i}`)),
      status: BATCH_JOB_DONE,
      outputHash: sha256(utf8(`out ${i}`)),
      durationMs: BigInt(i),
    }));
    const { root, proofs } = batchTree(leaves.map(batchLeafHash));
    const receipt: BatchReceipt = {
      chainId: 'unc-test',
      leaseId: sha256(utf8('lease')),
      chipId: sha256(utf8('chip')),
      batchId,
      modelHash: sha256(utf8('model')),
      jobCount: 5,
      resultsRoot: root,
      startMs: 1n,
      durationMs: 5n,
    };
    for (const leaf of leaves) verifyBatchLeaf(receipt, leaf, proofs[leaf.index]!);
    const leaf = leaves[2]!;
    const proof = proofs[2]!;
    assert.throws(
      () => verifyBatchLeaf(receipt, { ...leaf, outputHash: sha256(utf8('forged')) }, proof),
      /not the one the chip signed/,
    );
    assert.throws(
      () => verifyBatchLeaf(receipt, { ...leaf, status: 1 }, proof),
      /not the one the chip signed/,
    );
    assert.throws(() => verifyBatchLeaf(receipt, { ...leaf, durationMs: 99n }, proof), /not the one/);
    assert.throws(() => verifyBatchLeaf(receipt, { ...leaf, index: 3 }, proof), /another id/);
    // The last job cannot be passed off as one of a smaller batch (a receipt's count is signed).
    assert.throws(
      () => verifyBatchLeaf({ ...receipt, jobCount: 4 }, leaves[4]!, proofs[4]!),
      ValidationError,
    );
    assert.throws(
      () => verifyBatchLeaf({ ...receipt, batchId: sha256(utf8('other')) }, leaf, proof),
      /another id/,
    );
  });
});
