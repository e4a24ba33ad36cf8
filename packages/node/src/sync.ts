/**
 * Block sync (PROTOCOL.md §7): a node that is behind downloads committed blocks from its peers and
 * applies them in order before it joins consensus. Finality is immediate (§6), so there are no
 * forks to choose between: the best peer is simply the one with the highest committed height, and
 * any block that does not apply proves the peer that served it wrong.
 */
import { blockCodec, decode } from '@unc/core';
import { BlockWriteError, type Chain } from './chain.js';
import { type Clock, systemClock } from './clock.js';
import { type Logger, silentLogger } from './log.js';
import { type ChainStatus, MAX_BLOCKS_PER_REQUEST, type Network, type NetworkHandlers } from './p2p/types.js';

/** What sync needs from the node's chain. */
export interface SyncChain {
  /** Height of the latest committed block. */
  height(): bigint;
  /** Verifies and commits the next block (encoded with its commit); throws if it is invalid. */
  applyBlock(encodedBlock: Uint8Array): Promise<void>;
  /**
   * `following`, already fetched, is the block after `current`, which is about to be applied: its
   * signature checks can start on the verify pool while `current` executes (optional; only ever
   * a head start, never a verdict).
   */
  prepare?(following: Uint8Array, current: Uint8Array): void;
}

export interface SyncProgress {
  height: bigint;
  target: bigint;
  /** Blocks applied per second since this sync started. */
  blocksPerSecond: number;
  /** Seconds left at that rate; null until a rate is known. */
  etaSeconds: number | null;
}

export interface SyncOptions {
  network: Network;
  chain: SyncChain;
  onProgress?: (progress: SyncProgress) => void;
  /** Range requests in flight at once, spread over peers. Default 4. */
  parallel?: number;
  /** Heights per request, at most MAX_BLOCKS_PER_REQUEST (the default). */
  batchSize?: number;
  /** Minimum milliseconds between progress reports (the last one is always sent). Default 250. */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  logger?: Logger;
  /** For the progress rate; `systemClock` by default. */
  clock?: Clock;
}

export interface SyncResult {
  /** Our height when sync stopped. */
  height: bigint;
  /** The best height a usable peer reported; `height >= target` means we caught up. */
  target: bigint;
  /** Blocks applied by this call. */
  applied: number;
  /** Peers penalised or dropped during this sync (bad blocks, failed requests, empty answers). */
  excluded: string[];
}

type Answer = { blocks: Uint8Array[] } | { error: Error };

interface Slot {
  from: bigint;
  to: bigint;
  peer: string;
  answer: Promise<Answer>;
}

/** Asks every connected peer for its status (in parallel); peers that do not answer are left out. */
export async function peerStatuses(network: Network): Promise<Map<string, ChainStatus>> {
  const peers = network.peers().map((p) => p.id);
  const answers = await Promise.allSettled(peers.map((p) => network.requestStatus(p)));
  const out = new Map<string, ChainStatus>();
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') out.set(peers[i]!, a.value);
  });
  return out;
}

/**
 * The highest committed height among peers and the peer that has it, or null without peers.
 * `refresh: false` uses the statuses from the last exchange instead of asking again.
 */
export async function bestPeerHeight(
  network: Network,
  opts: { refresh?: boolean } = {},
): Promise<{ peer: string; height: bigint } | null> {
  const statuses =
    opts.refresh === false
      ? new Map(network.peers().flatMap((p) => (p.status ? [[p.id, p.status] as const] : [])))
      : await peerStatuses(network);
  let best: { peer: string; height: bigint } | null = null;
  for (const [peer, s] of statuses) if (!best || s.height > best.height) best = { peer, height: s.height };
  return best;
}

/**
 * For the consensus driver: true when some peer is more than `k` blocks ahead of `localHeight`,
 * i.e. the node should sync before taking part in consensus. Within `k` it can catch up through
 * the normal proposal/commit flow.
 */
export async function isBehind(
  network: Network,
  localHeight: bigint,
  k: bigint | number,
  opts: { refresh?: boolean } = {},
): Promise<boolean> {
  const best = await bestPeerHeight(network, opts);
  return best !== null && best.height - localHeight > BigInt(k);
}

/**
 * Downloads and applies blocks until the node reaches the best height its peers report (asking
 * again once there, since the chain moves on while we sync). Ranges are fetched from several peers
 * at once but applied strictly in order. A peer whose block does not apply is penalised and not
 * asked again in this sync; its range is fetched from another. Resolves when caught up, or when
 * no usable peer is ahead of us any more (`height < target` then says sync did not complete).
 * Rejects with the signal's reason when `signal` aborts, and with whatever `applyBlock` throws
 * only through the peer that served the block (never as a rejection of the whole sync).
 */
export async function syncChain(opts: SyncOptions): Promise<SyncResult> {
  const { network, chain, signal } = opts;
  const parallel = Math.max(1, opts.parallel ?? 4);
  const batch = BigInt(
    Math.min(MAX_BLOCKS_PER_REQUEST, Math.max(1, opts.batchSize ?? MAX_BLOCKS_PER_REQUEST)),
  );
  const log = (opts.logger ?? silentLogger).child('sync');
  const progressEvery = opts.progressIntervalMs ?? 250;
  const excluded = new Set<string>();
  const clock = opts.clock ?? systemClock;
  const started = clock.now();
  let applied = 0;
  let target = chain.height();
  let lastReport = 0;

  const report = (force: boolean) => {
    if (!opts.onProgress) return;
    const now = clock.now();
    if (!force && now - lastReport < progressEvery) return;
    lastReport = now;
    const seconds = (now - started) / 1000;
    const blocksPerSecond = seconds > 0 ? applied / seconds : 0;
    const left = target > chain.height() ? Number(target - chain.height()) : 0;
    opts.onProgress({
      height: chain.height(),
      target,
      blocksPerSecond,
      etaSeconds: blocksPerSecond > 0 ? left / blocksPerSecond : left === 0 ? 0 : null,
    });
  };

  const drop = (peer: string, why: string, blame: boolean) => {
    excluded.add(peer);
    if (blame) network.penalize(peer, why);
    log.info('peer dropped from sync', { peer, why, penalized: blame });
  };

  const fetch = (peer: string, from: bigint, to: bigint): Promise<Answer> =>
    network.requestBlocks(peer, from, to).then(
      (blocks) => ({ blocks }),
      (error: Error) => ({ error }),
    );

  for (;;) {
    signal?.throwIfAborted();
    const statuses = await peerStatuses(network);
    const usable = [...statuses]
      .filter(([peer]) => !excluded.has(peer))
      .sort((a, b) => (b[1].height > a[1].height ? 1 : b[1].height < a[1].height ? -1 : 0));
    // Only peers still trusted count: a peer that claimed a height and failed to serve it does not
    // keep the target (and the progress bar) pinned to its claim.
    target =
      usable.length > 0 && usable[0]![1].height > chain.height() ? usable[0]![1].height : chain.height();
    const ahead = usable.filter(([, s]) => s.height > chain.height());
    if (ahead.length === 0) break;
    log.info('syncing', { height: chain.height(), target, peers: ahead.length });
    report(true);

    // One pass: a pipeline of ranges from our height up; any failure ends it and the outer loop
    // starts a fresh one from wherever we got to, without the peer that failed.
    const pending: Slot[] = [];
    let next = chain.height() + 1n;
    let turn = 0;
    const fill = () => {
      while (pending.length < parallel && next <= target) {
        const able = ahead.filter(([peer, s]) => !excluded.has(peer) && s.height >= next);
        if (able.length === 0) return;
        const [peer, s] = able[turn++ % able.length]!;
        const end = next + batch - 1n;
        const to = end < s.height ? end : s.height;
        pending.push({ from: next, to, peer, answer: fetch(peer, next, to) });
        next = to + 1n;
      }
    };
    fill();
    while (pending.length > 0) {
      signal?.throwIfAborted();
      const slot = pending.shift()!;
      const answer = await slot.answer;
      if ('error' in answer) {
        // The network layer has already scored a bad or failed answer; here we only stop asking.
        drop(slot.peer, `request ${slot.from}…${slot.to} failed: ${answer.error.message}`, false);
        break;
      }
      if (answer.blocks.length === 0) {
        drop(slot.peer, `served no blocks of ${slot.from}…${slot.to} though it claims them`, true);
        break;
      }
      let bad = false;
      for (const [i, block] of answer.blocks.entries()) {
        const height = slot.from + BigInt(i);
        if (chain.height() !== height - 1n) {
          // Something else (e.g. consensus) committed meanwhile; restart from the new head.
          bad = true;
          break;
        }
        const following = answer.blocks[i + 1];
        if (following) chain.prepare?.(following, block);
        try {
          await chain.applyBlock(block);
        } catch (err) {
          // Our disk failed, not the block: no peer is to blame, and no later block can be
          // written either (chain.ts BlockWriteError), so the sync ends with the failure.
          if (err instanceof BlockWriteError) throw err;
          drop(slot.peer, `block ${height} does not apply: ${(err as Error).message}`, true);
          bad = true;
          break;
        }
        applied++;
        report(false);
      }
      // A short answer leaves a gap the later ranges cannot fill: start a new pass from here.
      if (bad || answer.blocks.length < Number(slot.to - slot.from + 1n)) break;
      fill();
    }
  }
  report(true);
  const height = chain.height();
  if (height < target) log.warn('sync stopped before the target', { height, target });
  else log.info('sync complete', { height, applied, seconds: (clock.now() - started) / 1000 });
  return { height, target, applied, excluded: [...excluded] };
}

/** Sync's view of a `Chain`: decode each block and let the chain verify and commit it. */
export function chainSyncTarget(chain: Chain): SyncChain {
  return {
    height: () => chain.height,
    applyBlock: async (encoded) => {
      await chain.verifyAndCommit(decode(blockCodec, encoded));
    },
  };
}

/** The status and block-range answers a node serves from its `Chain` (NetworkHandlers minus gossip). */
export function chainServer(chain: Chain): Pick<NetworkHandlers, 'status' | 'blocks'> {
  return {
    status: () => ({
      chainId: chain.genesis.chainId,
      genesisHash: chain.genesisHash,
      height: chain.height,
      headHash: chain.head.hash,
    }),
    blocks: async (from, to) => {
      const out: Uint8Array[] = [];
      for (let h = from; h <= to && h <= chain.height; h++) {
        const raw = await chain.db.getBlockBytes(h);
        if (!raw) break;
        out.push(raw);
      }
      return out;
    },
  };
}
