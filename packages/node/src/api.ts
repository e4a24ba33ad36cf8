/**
 * The JSON-RPC methods and subscriptions of a node (documented in docs/rpc.md). Parameters are
 * accepted positionally or by name; every malformed parameter is a -32602 with a message that
 * names it.
 */
import {
  accountKey,
  accountOfConsensusKey,
  blockCodec,
  blockHash,
  bondBacking,
  type Chip,
  challengeClasses,
  chipKey,
  chipsOfOwner,
  circulatingSupply,
  cumulativeEmission,
  DecodeError,
  decode,
  effectiveStatus,
  encode,
  encodeAddress,
  envelopeFromBytes,
  epochOf,
  epochPruned,
  epochStart,
  fromHex,
  genesisToJson,
  genesisValidatorSet,
  getAccount,
  getBond,
  getChip,
  getConsensusParams,
  getEmission,
  getEpochRecord,
  getGovernance,
  getMarketParams,
  getParams,
  getPociParams,
  getSupply,
  merkleProofCodec,
  ownerRatedPower,
  StateSpace,
  scheduledEmission,
  storedModelCodec,
  type TxEnvelope,
  toHex,
  trieKey,
  txEventCodec,
  UncError,
  validatorCandidateCount,
  validatorSetForHeight,
  vendorCodec,
} from '@unc/core';
import {
  type AccountJson,
  type BlockJson,
  blockToJson,
  type ChipEventJson,
  type ChipJson,
  chipLivenessJson,
  type EpochJson,
  eventToJson,
  headerToJson,
  type ModelJson,
  type RewardJson,
  type StatusJson,
  type SupplyJson,
  type TxEventJson,
  type TxReceiptJson,
  type TxStatusJson,
  txToJson,
  type ValidatorSetJson,
  type ValidatorSetProofJson,
  type VendorJson,
} from '@unc/sdk';
import { type OpenRpcDocument, openRpcDocument } from '@unc/sdk/openrpc';
import type { BlockRef } from '@unc/sdk/schema';
import { AdmissionBusy, SignatureCheckBusy, SyncingRefusal } from './admission.js';
import type { CommittedBlock } from './chain.js';
import { indexMethods } from './index-api.js';
import { marketMethods } from './market-api.js';
import type { RpcContext } from './rpc/context.js';
import { RpcError, type RpcServerModules } from './rpc/server.js';
import { bindMethods, bindSubscriptions } from './rpc/typed.js';
import { notFoundProven, proveRecord } from './state-proofs.js';
import { NODE_VERSION } from './version.js';

/** unc_getChips answers at most this many chips (the schema says so; unc_listChips pages). */
const GET_CHIPS_MAX = 1000;

export function notFound(what: string): UncError {
  return new UncError('NOT_FOUND', `${what} not found`);
}

export function createApi(node: RpcContext): RpcServerModules {
  const { chain } = node;
  let discovery: OpenRpcDocument | undefined;

  async function blockJson(height: bigint, full: boolean): Promise<BlockJson> {
    const block = await chain.blockAt(height);
    if (!block) throw notFound(`block ${height}`);
    const envelopes = block.txs.map((raw) => envelopeFromBytes(raw));
    const hash = height === chain.height ? chain.head.hash : blockHash(block.header);
    return blockToJson(
      block,
      hash,
      envelopes,
      full,
      accountOfConsensusKey(chain.state, block.header.proposer),
    );
  }

  async function resolveBlockRef(ref: BlockRef | null | undefined): Promise<bigint> {
    if (ref == null || ref.kind === 'latest') return chain.height;
    if (ref.kind === 'hash') {
      const height = await chain.db.getHeightByHash(ref.hash);
      if (height === null) throw notFound(`block ${toHex(ref.hash)}`);
      return height;
    }
    return ref.height;
  }

  const summaries = new WeakMap<CommittedBlock, BlockJson>();
  function blockSummary(c: CommittedBlock): BlockJson {
    let summary = summaries.get(c);
    if (!summary) {
      summary = blockToJson(
        c.block,
        c.hash,
        c.envelopes,
        false,
        accountOfConsensusKey(chain.state, c.block.header.proposer),
      );
      summaries.set(c, summary);
    }
    return summary;
  }

  function status(): StatusJson {
    const { header, hash } = chain.head;
    return {
      chainId: chain.genesis.chainId,
      height: Number(header.height),
      hash: toHex(hash),
      stateRoot: toHex(header.stateRoot),
      time: new Date(Number(header.time)).toISOString(),
      timeMs: Number(header.time),
      genesisHash: toHex(chain.genesisHash),
      mempool: { size: node.mempool.size, bytes: node.mempool.bytes },
      validator: node.validator ? toHex(node.validator.publicKey) : null,
      version: NODE_VERSION,
      peers: node.network?.peers().length ?? 0,
      syncing: syncing(),
      syncStopped: syncStopped(),
    };
  }

  function syncStopped(): NonNullable<StatusJson['syncStopped']> | null {
    const c = node.driver?.syncStopped;
    if (!c) return null;
    return {
      height: Number(c.height),
      reason: c.why,
      ours: c.head,
      theirs: c.theirs,
      peer: c.peer ?? null,
      nextStep: c.nextStep,
    };
  }

  function syncing(): StatusJson['syncing'] {
    const p = node.driver?.syncProgress;
    if (!p) return null;
    return {
      height: Number(p.height),
      target: Number(p.target),
      blocksPerSecond: p.blocksPerSecond,
      etaSeconds: p.etaSeconds,
    };
  }

  return {
    methods: {
      ...bindMethods({
        ...marketMethods(node),
        ...indexMethods(node, chipJson),
        unc_status: () => status(),
        unc_getGenesis: () => genesisToJson(chain.genesis),

        unc_getBlock: async ({ block, full }) => {
          const height = await resolveBlockRef(block);
          return blockJson(height, full === true);
        },

        /** What a block did before its transactions: the market's epoch-end settlement of leases. */
        unc_getBlockEvents: async ({ block }): Promise<TxEventJson[]> => {
          const height = await resolveBlockRef(block);
          const events = await chain.blockEventsAt(height);
          return (events ?? []).map(eventToJson);
        },

        /** The validator set that signs `height` (default: the next block). */
        unc_getValidators: (params): ValidatorSetJson => {
          const height = params.height ?? chain.height + 1n;
          if (height > chain.height + 1n)
            throw new RpcError(-32602, `height ${height} is beyond the next block`);
          const set = validatorSetForHeight(chain.state, chain.genesis, height);
          if (!set) throw notFound(`the validator set of height ${height} (older epochs are not kept)`);
          const epoch = epochOf(height, getPociParams(chain.state));
          const consensus = getConsensusParams(chain.state);
          // An epoch boundary that found no bonded account with online power keeps the set it had:
          // until one does, that is the genesis set.
          const genesisSet = genesisValidatorSet(chain.genesis);
          const isGenesis =
            genesisSet.validators.length === set.validators.length &&
            genesisSet.validators.every(
              (g, i) =>
                toHex(g.publicKey) === toHex(set.validators[i]!.publicKey) &&
                g.power === set.validators[i]!.power,
            );
          return {
            height: Number(height),
            epoch: Number(epoch),
            source: isGenesis ? 'genesis' : 'computed',
            totalPower: set.totalPower.toString(),
            quorumPower: set.quorumPower.toString(),
            validators: set.validators.map((v) => {
              const address = accountOfConsensusKey(chain.state, v.publicKey);
              const bonded = getBond(chain.state, address).bonded;
              return {
                publicKey: toHex(v.publicKey),
                address: encodeAddress(address),
                power: v.power.toString(),
                sharePpm: Number((v.power * 1_000_000n) / set.totalPower),
                bonded: bonded.toString(),
                backedPower: bondBacking(bonded, consensus).toString(),
                ratedPower: ownerRatedPower(chain.state, address).toString(),
              };
            }),
            // Counted, not listed: anyone can be a candidate by bonding 1 base unit, and this is 1 unit.
            candidates: validatorCandidateCount(chain.state),
            minValidatorBond: consensus.minValidatorBond.toString(),
            uncPerPowerUnit: consensus.uncPerPowerUnit.toString(),
          };
        },

        unc_getRawBlock: async ({ block: ref }) => {
          const height = await resolveBlockRef(ref);
          const block = await chain.blockAt(height);
          if (!block) throw notFound(`block ${height}`);
          return toHex(encode(blockCodec, block));
        },

        unc_getBlocks: async ({ from, count }) => {
          const countRaw = count ?? 20;
          const out: BlockJson[] = [];
          for (let h = from; h >= 0n && out.length < countRaw && h <= chain.height; h--)
            out.push(await blockJson(h, false));
          return out;
        },

        unc_getTransaction: async ({ hash }): Promise<TxReceiptJson> => {
          const loc = await chain.db.getTxLocation(hash);
          if (!loc) {
            // In the mempool, or in a decided block still being written (not reported before it is
            // on disk, and no longer in the mempool).
            if (node.mempool.has(hash) || chain.isBeingWritten(hash))
              throw new UncError('PENDING', 'transaction is in the mempool, not yet included');
            const dropped = node.mempool.dropped(hash);
            if (dropped) {
              throw new UncError(
                'DROPPED',
                `dropped: ${dropped.code} at height ${dropped.height} (${dropped.reason})`,
              );
            }
            throw notFound(`transaction ${toHex(hash)}`);
          }
          const block = (await chain.blockAt(loc.height))!;
          const results = (await chain.resultsAt(loc.height))!;
          const env = envelopeFromBytes(block.txs[loc.index]!);
          return {
            hash: toHex(hash),
            height: Number(loc.height),
            index: loc.index,
            blockHash: toHex(blockHash(block.header)),
            time: new Date(Number(block.header.time)).toISOString(),
            tx: txToJson(env),
            events: results[loc.index]!.events.map(eventToJson),
          };
        },

        /** Where a transaction is: included (and where), pending, dropped (why and when) or unknown. */
        unc_getTransactionStatus: async ({ hash }): Promise<TxStatusJson> => {
          const loc = await chain.db.getTxLocation(hash);
          if (loc) {
            const block = await chain.blockAt(loc.height);
            return {
              hash: toHex(hash),
              status: 'included',
              height: Number(loc.height),
              index: loc.index,
              blockHash: block ? toHex(blockHash(block.header)) : '',
            };
          }
          if (node.mempool.has(hash) || chain.isBeingWritten(hash))
            return { hash: toHex(hash), status: 'pending' };
          const dropped = node.mempool.dropped(hash);
          if (dropped) {
            return {
              hash: toHex(hash),
              status: 'dropped',
              code: dropped.code,
              reason: dropped.reason,
              height: Number(dropped.height),
              ...(dropped.answer ? { answer: dropped.answer } : {}),
            };
          }
          return { hash: toHex(hash), status: 'unknown' };
        },

        unc_getAccount: ({ address, proof, pending }): AccountJson => {
          const wantProof = proof === true;
          const { header } = chain.head;
          const account = getAccount(chain.state, address);
          const out: AccountJson = {
            address: encodeAddress(address),
            balance: account.balance.toString(),
            nonce: Number(account.nonce),
            height: Number(header.height),
            stateRoot: toHex(header.stateRoot),
          };
          // The next free nonce counting the sender's pending transactions: from the tip's state
          // (a decided block still being written has left the mempool already, and the head's
          // nonce does not count it yet), then the mempool's gapless run after it. Only the head's:
          // there is no pending at a past height. Public already (the decided block, what the pool
          // gossips); bounded by the per-sender cap (Mempool.nextNonce).
          if (pending === true)
            out.pendingNonce = Number(
              node.mempool.nextNonce(address, getAccount(chain.tipState, address).nonce),
            );
          if (wantProof) {
            const key = accountKey(address);
            out.proof = toHex(encode(merkleProofCodec, chain.state.trie.prove(trieKey(key))));
            const raw = chain.state.get(key);
            out.value = raw ? toHex(raw) : null;
          }
          return out;
        },

        /** Kept from when the block was written: a past block's trie is not (light clients, docs/rpc.md). */
        unc_getValidatorSetProof: async ({ height }): Promise<ValidatorSetProofJson> => {
          const json = await chain.db.getValidatorSetProof(BigInt(height));
          if (json === null)
            throw notFound(
              `validator set proof at block ${height} (not an epoch's last block, or synced past)`,
            );
          return JSON.parse(json) as ValidatorSetProofJson;
        },

        unc_getHeader: async ({ block: ref }) => {
          const height = await resolveBlockRef(ref);
          const block = await chain.blockAt(height);
          if (!block) throw notFound(`block ${height}`);
          return headerToJson(
            block.header,
            blockHash(block.header),
            accountOfConsensusKey(chain.state, block.header.proposer),
          );
        },

        unc_getSupply: (): SupplyJson => {
          const s = getSupply(chain.state);
          const e = getEmission(chain.state);
          const p = getPociParams(chain.state);
          const current = getEpochRecord(chain.state, epochOf(chain.height, p));
          const elapsed = chain.head.header.time - e.genesisTime;
          return {
            maxSupply: s.maxSupply.toString(),
            genesisAllocation: s.genesisAllocation.toString(),
            miningReserve: s.miningReserve.toString(),
            minted: s.minted.toString(),
            reserveRemaining: (s.miningReserve - s.minted).toString(),
            burned: s.burned.toString(),
            slashed: s.slashed.toString(),
            circulating: circulatingSupply(s).toString(),
            emittedAllowance: cumulativeEmission(s.miningReserve, e.halvingPeriodMs, elapsed).toString(),
            allocatedToEpochs: e.allocated.toString(),
            halvingPeriodMs: Number(e.halvingPeriodMs),
            currentEpoch: current
              ? {
                  epoch: Number(current.epoch),
                  totalWeight: current.totalWeight.toString(),
                  startTime: Number(current.startTime),
                }
              : null,
          };
        },

        /** Per-epoch earnings of a chip, or of every chip of an owner, and why. */
        unc_getRewards: async ({ target }): Promise<RewardJson[]> => {
          let chipIds: Uint8Array[];
          if (target.kind === 'chip') chipIds = [target.chipId];
          else {
            // The owner's index, not a decode of every chip on chain (5 s with 200,000 chips,
            // before the first await: the event loop, consensus included, stood still).
            chipIds = chipsOfOwner(chain.state, target.owner);
          }
          const out: RewardJson[] = [];
          for (const chipId of chipIds) {
            for (const row of await chain.db.chipEvents(chipId, 1000)) {
              const e = decode(txEventCodec, row.event);
              if (e.type !== 'chipRewarded') continue;
              out.push({
                chipId: toHex(e.chipId),
                owner: encodeAddress(e.owner),
                epoch: Number(e.epoch),
                paidAt: Number(row.height),
                slotsAnswered: e.answered,
                slotsChallenged: e.challenged,
                slotsMissed: e.challenged - e.answered,
                graceUsed: e.credited - e.answered,
                power: e.power.toString(),
                weight: e.weight.toString(),
                epochBudget: e.budget.toString(),
                networkWeight: e.totalWeight.toString(),
                amount: e.amount.toString(),
              });
            }
          }
          return out.sort((a, b) => b.epoch - a.epoch || a.chipId.localeCompare(b.chipId));
        },

        unc_getParams: () => {
          // The committed head's (chain.params are the tip's: a decided block may still be writing).
          const p = getParams(chain.state);
          const market = getMarketParams(chain.state);
          return {
            blockTimeMs: p.blockTimeMs,
            maxBlockTxs: p.maxBlockTxs,
            maxBlockBytes: p.maxBlockBytes,
            maxTxBytes: p.maxTxBytes,
            minFeePerByte: p.minFeePerByte.toString(),
            minFeePerAction: p.minFeePerAction.toString(),
            maxTxLifetimeBlocks: Number(p.maxTxLifetimeBlocks),
            // A chain that accepts software "chips" (dev-soft) is a dev chain: renters may use
            // plain-http provider endpoints there, and nowhere else.
            devChain: getPociParams(chain.state).devSoftEnabled,
            // When the chain takes a dispute (request time + disputeWaitMs, by block time) and how
            // long after a lease's end its receipts may be posted: renters (the gateway) wait for them.
            disputeWaitMs: Number(market.disputeWaitMs),
            receiptWindowMs: Number(market.receiptWindowMs),
          };
        },

        unc_sendTransaction: async ({ tx }) => {
          const [result] = await submitMany([decodeRaw(tx)]);
          // Refused on the stale state of a node that is catching up: -32005 BUSY, as a full
          // admission queue, so the client retries instead of giving the transaction up.
          if (result instanceof SyncingRefusal) throw syncingRpcError(result);
          // Its signature check was refused with an earlier copy's (busy pool): -32005 BUSY too.
          if (result instanceof SignatureCheckBusy)
            throw new RpcError(-32005, result.message, { reason: 'BUSY', retryAfterMs: result.retryAfterMs });
          if (result instanceof Error) throw result;
          return result!;
        },

        /**
         * Many transactions in one call; each gets its own result or error, in order. They go
         * through the admission queue together: a full queue refuses the whole call (BUSY).
         */
        unc_sendTransactions: async ({ txs }) => {
          const decoded = txs.map((item): TxEnvelope | Error => {
            try {
              return decodeRaw(fromHex(item));
            } catch (err) {
              return err as Error;
            }
          });
          const envs = decoded.filter((d): d is TxEnvelope => !(d instanceof Error));
          const admitted = await submitMany(envs);
          let k = 0;
          return decoded.map((d) => {
            const r = d instanceof Error ? d : admitted[k++]!;
            if (!(r instanceof Error)) return r;
            // Per transaction, "busy, retry" carries when: the client resends just that one.
            if (r instanceof SyncingRefusal || r instanceof SignatureCheckBusy)
              return { error: { reason: 'BUSY', message: r.message, retryAfterMs: r.retryAfterMs } };
            const e = r as Error & { code?: unknown };
            return {
              error: { reason: typeof e.code === 'string' ? e.code : 'INVALID', message: e.message },
            };
          });
        },

        unc_mempool: () => ({ size: node.mempool.size, bytes: node.mempool.bytes }),

        /** With `proof`: the chip record and every record its status reads, proven (state-proofs.ts). */
        unc_getChip: ({ chipId, proof }): ChipJson => {
          const chip = getChip(chain.state, chipId);
          if (proof !== true) {
            if (!chip) throw notFound(`chip ${toHex(chipId)}`);
            return chipJson(chip);
          }
          const proven = proveRecord(chain.state, chain.head.header, chipKey(chipId), (reader) => {
            if (!chip) return;
            // What a light client recomputes (sdk checkChip): status at the head's block time, then
            // liveness and operator.
            const { status } = effectiveStatus(reader, chip, chain.head.header.time);
            chipLivenessJson(reader, chip, status, chain.head.header);
          });
          if (!chip) throw notFoundProven(`chip ${toHex(chipId)}`, proven);
          return { ...chipJson(chip), ...proven };
        },

        /**
         * The first 1,000 chips by id, of an owner or of all. An owner's come from its index (one
         * read a chip, priced per chip in rpc-costs.ts), the others from the sorted keys LiveState
         * keeps: decoding every chip on chain per request held the event loop 1.6 s with 200,000.
         */
        unc_getChips: ({ owner }): ChipJson[] => {
          const ids = owner
            ? chipsOfOwner(chain.state, owner).map(toHex).sort().slice(0, GET_CHIPS_MAX)
            : chain.state
                .keysIn(StateSpace.chip)
                .slice(0, GET_CHIPS_MAX)
                .map((k) => toHex(k.subarray(1)));
          const out: ChipJson[] = [];
          for (const id of ids) {
            const chip = getChip(chain.state, fromHex(id, 32));
            if (chip) out.push(chipJson(chip));
          }
          return out;
        },

        unc_getChipEvents: async ({ chipId, limit }): Promise<ChipEventJson[]> => {
          const rows = await chain.db.chipEvents(chipId, limit ?? 100);
          return rows.map((r) => ({
            height: Number(r.height),
            event: eventToJson(decode(txEventCodec, r.event)),
          }));
        },

        unc_getGovernance: () => {
          const g = getGovernance(chain.state);
          return { threshold: g.threshold, keys: g.keys.map(toHex), nonce: Number(g.nonce) };
        },

        unc_getVendors: (): VendorJson[] =>
          chain.state.keysIn(StateSpace.vendor).map((k) => {
            const v = decode(vendorCodec, chain.state.get(k)!);
            return {
              id: v.id,
              name: v.name,
              profile: v.profile,
              roots: v.roots.map(toHex),
              requireAkEku: v.requireAkEku === true,
              requireHardwareModuleName: v.requireHardwareModuleName === true,
            };
          }),

        unc_getModels: (): ModelJson[] =>
          chain.state.keysIn(StateSpace.model).map((k) => {
            const m = decode(storedModelCodec, chain.state.get(k)!);
            return { vendorId: m.vendorId, modelId: m.modelId, name: m.name, power: m.power.toString() };
          }),

        unc_getEpoch: (params): EpochJson => {
          const p = getPociParams(chain.state);
          const epoch = params.epoch ?? epochOf(chain.height, p);
          const record = getEpochRecord(chain.state, epoch);
          // CONSENSUS CHANGE (docs/poci.md "Old epochs are pruned"): an old epoch's record is gone
          // once nothing of it was left to pay; its payouts stay in unc_getRewards (the events).
          if (!record && epochPruned(chain.state, epoch))
            throw new UncError(
              'PRUNED',
              `epoch ${epoch} was pruned from the state (all of its rewards were paid); its payouts are in unc_getRewards`,
            );
          const start = epochStart(epoch, p);
          return {
            epoch: Number(epoch),
            startHeight: Number(start),
            endHeight: Number(start + p.epochBlocks - 1n),
            seed: record ? toHex(record.seed) : null,
            epochBlocks: Number(p.epochBlocks),
            slotsPerEpoch: p.slotsPerEpoch,
            challengeClasses: Number(challengeClasses(p)),
            answerWindowBlocks: Number(p.answerWindowBlocks),
            offlineAfterMisses: p.offlineAfterMisses,
            startTime: record ? Number(record.startTime) : null,
            totalWeight: (record?.totalWeight ?? 0n).toString(),
            final: record?.final ?? false,
            budget: (record ? epochBudgetSoFar(record) : 0n).toString(),
          };
        },
      }),
      // The document is built from the schema once; it does not change while the node runs.
      'rpc.discover': () => {
        discovery ??= openRpcDocument(NODE_VERSION);
        return discovery;
      },
    },

    subscriptions: bindSubscriptions({
      // One summary object per block, shared by every subscriber: the server serialises it once.
      newBlocks: (_params, emit) => node.watchBlocks((c) => emit(blockSummary(c))),

      /** Emits once: when the transaction is included, or dropped with its reason. */
      tx: ({ hash }, emit) => {
        let done = false;
        const unwatch = node.watchTx(hash, (event) => {
          done = true;
          emit({ hash: toHex(hash), ...event });
        });
        const rejected = node.recentRejection(hash);
        if (rejected) {
          // Dropped before this subscription started; a resubmission may still be pending, so
          // only say so when the transaction is not in the mempool again.
          if (!node.mempool.has(hash)) {
            unwatch();
            queueMicrotask(() =>
              emit({
                hash: toHex(hash),
                status: 'rejected',
                code: rejected.code,
                reason: rejected.reason,
                height: Number(rejected.height),
                ...(rejected.answer ? { answer: rejected.answer } : {}),
              }),
            );
            return () => {};
          }
        }
        // The look-up may finish after the client unsubscribed or the node closed its database:
        // then nothing is emitted, and a failed read is logged rather than left unhandled.
        let stopped = false;
        void chain.db
          .getTxLocation(hash)
          .then(async (loc) => {
            if (!loc || done || stopped) return;
            unwatch();
            const block = await chain.blockAt(loc.height);
            if (stopped) return;
            emit({
              hash: toHex(hash),
              status: 'included',
              height: Number(loc.height),
              index: loc.index,
              blockHash: block ? toHex(blockHash(block.header)) : '',
            });
          })
          .catch((err: unknown) => {
            if (!stopped) node.logger.warn('tx subscription: look-up failed', { error: err as Error });
          });
        return () => {
          stopped = true;
          unwatch();
        };
      },
    }),

    metrics: () => node.metrics.render(),
    health: () => {
      const ageMs = Date.now() - Number(chain.head.header.time);
      const expected = chain.params.blockTimeMs;
      return {
        ok: node.validator === null || ageMs < Math.max(10 * expected, 10_000),
        height: Number(chain.height),
        lastBlockAgeMs: ageMs,
      };
    },
    logger: node.logger.child('rpc'),
  };

  /** A final epoch's budget; otherwise what it has accrued so far (see EpochJson.budget). */
  function epochBudgetSoFar(record: NonNullable<ReturnType<typeof getEpochRecord>>): bigint {
    if (record.final) return record.budget;
    const e = getEmission(chain.state);
    const reserve = getSupply(chain.state).miningReserve;
    const next = getEpochRecord(chain.state, record.epoch + 1n);
    const end = next ? next.startTime : chain.head.header.time;
    // Its own span of the schedule so far (paid only if a chip has weight in it when it is final).
    return end > record.startTime ? scheduledEmission(reserve, e, record.startTime, end) : 0n;
  }

  function chipJson(chip: Chip): ChipJson {
    // At the head's block time: a chip past its certificates' end reads revoked, with the reason.
    const { status, reason } = effectiveStatus(chain.state, chip, chain.head.header.time);
    // The liveness fields and the heartbeat operator come from the function a light client runs
    // over proven state to check them (sdk chipLivenessJson), at the head block.
    const live = chipLivenessJson(chain.state, chip, status, chain.head.header);
    return {
      chipId: toHex(chip.chipId),
      owner: encodeAddress(chip.owner),
      vendorId: chip.vendorId,
      modelId: chip.modelId,
      profile: chip.profile,
      power: chip.power.toString(),
      certSerials: chip.certSerials,
      keyMaterial: toHex(chip.keyMaterial),
      status,
      statusReason: reason,
      online: live.online,
      consecutiveMisses: live.consecutiveMisses,
      registeredAt: Number(chip.registeredAt),
      firstEpoch: Number(chip.firstEpoch),
      lastAnsweredAt: Number(chip.lastAnsweredAt),
      slotsAnswered: Number(chip.slotsAnswered),
      slotsMissed: Number(chip.slotsMissed),
      rewardsEarned: chip.rewardsEarned.toString(),
      tpmClock: chip.tpmClock
        ? {
            clock: chip.tpmClock.clock.toString(),
            resetCount: chip.tpmClock.resetCount,
            restartCount: chip.tpmClock.restartCount,
          }
        : null,
      slots: live.slots,
      challengeClass: live.challengeClass,
      // As of the next block, the first a heartbeat sent now can land in (a change takes effect there).
      heartbeatOperator: live.heartbeatOperator ?? null,
    };
  }

  function decodeRaw(raw: Uint8Array): TxEnvelope {
    try {
      return envelopeFromBytes(raw);
    } catch (err) {
      if (err instanceof DecodeError) throw new UncError('DECODE', `malformed transaction: ${err.message}`);
      throw err;
    }
  }

  /** -32005 BUSY for a refusal deferred while the node catches up (admission.ts SyncingRefusal). */
  function syncingRpcError(r: SyncingRefusal): RpcError {
    return new RpcError(-32005, r.message, {
      reason: 'BUSY',
      retryAfterMs: r.retryAfterMs,
      syncing: true,
      refusal: r.refusal.code,
    });
  }

  /**
   * Through the node's admission queue; a full queue answers -32005 BUSY with `retryAfterMs`
   * (docs/rpc.md), the whole call refused, nothing admitted.
   */
  async function submitMany(
    envs: readonly TxEnvelope[],
  ): Promise<({ hash: string; replaced: boolean } | Error)[]> {
    let results: Awaited<ReturnType<RpcContext['submitMany']>>;
    try {
      results = await node.submitMany(envs);
    } catch (err) {
      if (err instanceof AdmissionBusy) {
        throw new RpcError(-32005, err.message, {
          reason: 'BUSY',
          limit: err.limit,
          retryAfterMs: err.retryAfterMs,
        });
      }
      throw err;
    }
    return results.map((r, i) =>
      r instanceof Error ? r : { hash: toHex(envs[i]!.hash), replaced: r.replaced },
    );
  }
}
