/**
 * Keeps one live picture of the node for every page: connection state, head status, the last ~100
 * block summaries, supply, parameters and the latest transactions.
 *
 * New blocks arrive over the WebSocket `newBlocks` subscription; when that socket is not open the
 * watcher polls instead. A health probe (unc_status) runs every few seconds: a slow answer raises
 * the "slow" state, a failure the "down" state with a retry countdown (1 s, 2 s, 4 s, then every
 * 5 s). Data already shown stays on screen while the node is away; when it comes back the watcher
 * re-reads everything and bumps `epoch`, so pages re-fetch.
 */
import {
  type BlockJson,
  type EpochJson,
  type NetworkStats,
  NodeUnreachableError,
  type ParamsJson,
  RpcClientError,
  type StatusJson,
  type Subscription,
  type SupplyJson,
  type TxJson,
  UncClient,
} from '../sdk';

export const WINDOW_BLOCKS = 100;
export const RECENT_TXS = 25;
/** Pages of 100 block summaries looked at beyond the window for the latest transactions. */
export const EXTRA_TX_PAGES = 4;
/** The first wait before the WebSocket is tried again after a refusal; it doubles to the max. */
export const SUBSCRIBE_WAIT_MS = 4_000;
export const SUBSCRIBE_WAIT_MAX_MS = 60_000;
/** A probe slower than this shows the "slow" banner. */
export const SLOW_MS = 2500;
/** A probe that takes longer than this counts as a failure. */
export const PROBE_TIMEOUT_MS = 8000;

/** Network samples kept in memory (oldest dropped first). */
export const MAX_SAMPLES = 1500;
/** At most one network sample (unc_getChips + unc_getEpoch) this often, whatever the block rate (and
 *  no more often than five times the last sample's round trip). */
export const SAMPLE_MIN_MS = 1500;

/** Attested power and chips at one height, summed by the node over every chip: sampled live, or the node's record of an epoch start. */
export interface NetworkSample {
  height: number;
  /** Dense FP16 TFLOPS × 1000 of the active chips online. */
  power: bigint;
  online: number;
  /** Active chips (online or not), and their power. */
  active: number;
  activePower: bigint;
  /** The node's record of an epoch's first block (unc_getNetworkHistory), not a live sample. */
  rebuilt: boolean;
}

export type ConnState = 'connecting' | 'ok' | 'slow' | 'down' | 'invalid';

export interface RecentTx {
  tx: TxJson;
  height: number;
  timeMs: number;
}

export interface NodeSnapshot {
  url: string;
  conn: ConnState;
  /** Why the node is down (or the URL invalid). */
  error: string | null;
  /** When the next attempt runs, while down (ms since epoch). */
  retryAt: number | null;
  /** How new blocks arrive: over the WebSocket subscription, by polling, or not at all yet. */
  live: 'ws' | 'poll' | 'off';
  /** While polling: why, and when the WebSocket is tried again (words; no text from the node). */
  liveWhy: string | null;
  status: StatusJson | null;
  params: ParamsJson | null;
  supply: SupplyJson | null;
  /** Newest first, at most WINDOW_BLOCKS, contiguous heights. */
  blocks: BlockJson[];
  /** Newest first. */
  recentTxs: RecentTx[];
  /** Bumped every time the node comes back after being unreachable. */
  epoch: number;
  /** The current POCI epoch (`unc_getEpoch`), with its budget so far; re-read with each sample. */
  currentEpoch: EpochJson | null;
  /** Online attested power and chips over time, oldest first, one entry per height at most. */
  network: NetworkSample[];
}

export function errorText(err: unknown): string {
  // "cannot reach the node at URL: cause": the banner already names the node, keep the cause.
  if (err instanceof NodeUnreachableError) return err.message.replace(/^cannot reach the node at \S+: /, '');
  if (err instanceof RpcClientError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export class NodeWatcher {
  readonly client: UncClient | null;
  private readonly probe: UncClient | null;
  private snap: NodeSnapshot;
  private readonly listeners = new Set<() => void>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private sub: Subscription | null = null;
  private subscribing = false;
  private failures = 0;
  private stopped = true;
  private synced = false;
  /** Serialises every change to the block window. */
  private queue: Promise<void> = Promise.resolve();
  private lastSubscribeTry = Number.NEGATIVE_INFINITY;
  /** Tries of the WebSocket refused in a row: the wait before the next doubles with each. */
  private subscribeFailures = 0;
  /**
   * What this tab adds to the wait, a fraction of it: tabs refused together (a node's restart drops
   * every socket at once; a node allows 8 per address) would otherwise come back together each time.
   */
  private readonly subscribeJitter = Math.random() / 2;
  /** Monotonic ms: a wall-clock step must not stop or rush the tries. Replaced in tests. */
  now: () => number = () => performance.now();
  /** Bumped by start() and stop(), so a probe still in flight from an earlier run is ignored. */
  private generation = 0;
  private inFlight = false;
  private again = false;
  private sampling = false;
  private lastSample = 0;
  /** How long the last sample took: a node slow to list its chips is asked less often. */
  private sampleMs = 0;

  constructor(url: string) {
    let client: UncClient | null = null;
    let probe: UncClient | null = null;
    let error: string | null = null;
    try {
      // The WebSocket or nothing: where it is refused (a node allows 8 per address; HTTP 429) the
      // watcher polls on its own probe, and tries the WebSocket again itself (trySubscribe). In
      // 'auto' mode the sdk would poll too, every 500 ms, under a page that said "live".
      client = new UncClient(url, {
        timeoutMs: 15_000,
        subscriptions: { mode: 'websocket', maxSocketFailures: 1 },
      });
      probe = new UncClient(url, { timeoutMs: PROBE_TIMEOUT_MS });
    } catch (err) {
      error = errorText(err);
    }
    this.client = client;
    this.probe = probe;
    this.snap = {
      url: client?.url ?? url,
      conn: client ? 'connecting' : 'invalid',
      error,
      retryAt: null,
      live: 'off',
      liveWhy: null,
      status: null,
      params: null,
      supply: null,
      blocks: [],
      recentTxs: [],
      epoch: 0,
      currentEpoch: null,
      network: [],
    };
  }

  getSnapshot = (): NodeSnapshot => this.snap;

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  start(): void {
    if (!this.client || !this.stopped) return;
    this.stopped = false;
    this.generation++;
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.sub?.close();
    this.sub = null;
  }

  /** Runs the next probe now (the banner's "retry now"). */
  retryNow(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    void this.tick();
  }

  private set(patch: Partial<NodeSnapshot>): void {
    this.snap = { ...this.snap, ...patch };
    for (const fn of this.listeners) fn();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    this.timer = null;
    if (this.stopped || !this.probe) return;
    // One probe at a time; a request for another while one runs is served right after it.
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    try {
      await this.probeOnce();
    } finally {
      this.inFlight = false;
      if (this.again && !this.stopped) {
        this.again = false;
        this.schedule(0);
      }
    }
  }

  private async probeOnce(): Promise<void> {
    if (!this.probe) return;
    const gen = this.generation;
    const slow = setTimeout(() => {
      if (this.snap.conn === 'ok' || this.snap.conn === 'connecting') this.set({ conn: 'slow' });
    }, SLOW_MS);
    try {
      const status = await this.probe.status();
      clearTimeout(slow);
      if (this.stopped || gen !== this.generation) return;
      const cameBack = this.snap.conn === 'down';
      if (!this.synced || cameBack) {
        await this.resync(status, cameBack);
      } else {
        // A block heard over the socket may already be newer than this probe's answer.
        const prev = this.snap.status;
        this.set({
          status:
            prev && prev.height > status.height
              ? { ...status, height: prev.height, hash: prev.hash, time: prev.time, timeMs: prev.timeMs }
              : status,
        });
        if (!this.sub) await this.enqueue(() => this.catchUp(status.height));
        await this.refreshSupply();
      }
      this.failures = 0;
      this.set({ conn: 'ok', error: null, retryAt: null });
      if (!this.sub) void this.trySubscribe();
      // With the subscription open the probe is only a health check; without it, it is the feed.
      const blockTime = this.snap.params?.blockTimeMs ?? 1000;
      this.schedule(this.sub ? 3000 : Math.min(Math.max(blockTime, 500), 3000));
    } catch (err) {
      clearTimeout(slow);
      if (this.stopped || gen !== this.generation) return;
      this.failures++;
      const delay = Math.min(1000 * 2 ** (this.failures - 1), 5000);
      this.sub?.close();
      this.sub = null;
      this.set({ conn: 'down', error: errorText(err), retryAt: Date.now() + delay, live: 'off' });
      this.schedule(delay);
    }
  }

  /** Reads everything afresh: at start and whenever the node comes back. */
  private async resync(status: StatusJson, cameBack: boolean): Promise<void> {
    const client = this.client!;
    const [params, supply] = await Promise.all([
      this.snap.params ? Promise.resolve(this.snap.params) : client.getParams(),
      client.getSupply(),
    ]);
    const count = Math.min(WINDOW_BLOCKS, status.height + 1);
    const blocks = count > 0 ? await client.getBlocks(status.height, count) : [];
    const recentTxs = await this.collectTxs(blocks, RECENT_TXS);
    // On a quiet chain the window may hold few transactions: look a few hundred blocks further.
    let below = (blocks[blocks.length - 1]?.height ?? 0) - 1;
    for (let i = 0; i < EXTRA_TX_PAGES && recentTxs.length < 10 && below >= 0; i++) {
      const older = await client.getBlocks(below, Math.min(WINDOW_BLOCKS, below + 1));
      recentTxs.push(...(await this.collectTxs(older, RECENT_TXS - recentTxs.length)));
      below -= older.length;
    }
    await this.enqueue(async () => {
      // Blocks that arrived over the subscription meanwhile are newer than this window.
      const top = this.snap.blocks[0];
      const merged = top && top.height > status.height ? mergeBlocks(this.snap.blocks, blocks) : blocks;
      this.set({
        status,
        params,
        supply,
        blocks: merged,
        recentTxs,
        epoch: cameBack ? this.snap.epoch + 1 : this.snap.epoch,
      });
    });
    this.synced = true;
    void this.sampleNetwork();
  }

  private async refreshSupply(): Promise<void> {
    try {
      const supply = await this.client!.getSupply();
      this.set({ supply });
    } catch {
      // The next probe reports the node's state.
    }
  }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * SUBSCRIBE_WAIT_MS, doubled for each refusal past the first, at most SUBSCRIBE_WAIT_MAX_MS; after
   * a refusal, plus this tab's share of it (subscribeJitter, under half).
   */
  private subscribeWait(): number {
    const base = Math.min(
      SUBSCRIBE_WAIT_MAX_MS,
      SUBSCRIBE_WAIT_MS * 2 ** Math.max(0, this.subscribeFailures - 1),
    );
    return this.subscribeFailures === 0 ? base : base * (1 + this.subscribeJitter);
  }

  private async trySubscribe(): Promise<void> {
    if (this.subscribing || this.sub || this.stopped || !this.client) return;
    if (this.now() - this.lastSubscribeTry < this.subscribeWait()) return;
    this.lastSubscribeTry = this.now();
    this.subscribing = true;
    try {
      const sub = await this.client.subscribe<BlockJson>('newBlocks', [], (block) => {
        void this.enqueue(() => this.onBlock(block));
      });
      if (this.stopped) {
        sub.close();
        return;
      }
      this.sub = sub;
      this.subscribeFailures = 0;
      this.set({ live: 'ws', liveWhy: null });
      sub.onClose(() => {
        if (this.sub !== sub) return;
        this.sub = null;
        if (this.stopped) return;
        this.set({ live: 'poll', liveWhy: 'The WebSocket closed: polling the node; trying it again.' });
        // Find out at once whether the node is gone or only the socket.
        this.retryNow();
      });
    } catch {
      // Refused (past the node's WebSockets per address: others behind the same address may hold
      // them) or failed: each try waits twice as long as the last, so a tab is no retry storm.
      this.subscribeFailures++;
      const next = Math.round(this.subscribeWait() / (1 + this.subscribeJitter) / 1000);
      if (!this.stopped && this.snap.conn === 'ok')
        this.set({
          live: 'poll',
          liveWhy: `The node refused the WebSocket or it failed (a node allows a few per address, and others behind the same address may hold them): polling the node; next try in ${next} s or later.`,
        });
    } finally {
      this.subscribing = false;
    }
  }

  private async onBlock(block: BlockJson): Promise<void> {
    const top = this.snap.blocks[0];
    if (top && block.height <= top.height) return;
    if (top && block.height > top.height + 1) {
      await this.catchUp(block.height);
      return;
    }
    const status = this.snap.status
      ? {
          ...this.snap.status,
          height: block.height,
          hash: block.hash,
          time: block.time,
          timeMs: block.timeMs,
        }
      : null;
    this.set({ blocks: [block, ...this.snap.blocks].slice(0, WINDOW_BLOCKS), status });
    void this.sampleNetwork();
    if (block.txCount > 0) {
      const txs = await this.collectTxs([block], RECENT_TXS);
      this.set({ recentTxs: [...txs, ...this.snap.recentTxs].slice(0, RECENT_TXS) });
      void this.refreshSupply();
    }
  }

  /** Fetches the blocks between the window's top and `height` (polling, or a gap in the feed). */
  private async catchUp(height: number): Promise<void> {
    const top = this.snap.blocks[0]?.height ?? -1;
    if (height <= top) return;
    const count = Math.min(WINDOW_BLOCKS, height - top);
    const fresh = await this.client!.getBlocks(height, count);
    const txs = await this.collectTxs(fresh, RECENT_TXS);
    const newest = fresh[0];
    const status =
      this.snap.status && newest
        ? {
            ...this.snap.status,
            height: newest.height,
            hash: newest.hash,
            time: newest.time,
            timeMs: newest.timeMs,
          }
        : this.snap.status;
    this.set({
      blocks: mergeBlocks(fresh, this.snap.blocks),
      recentTxs: [...txs, ...this.snap.recentTxs].slice(0, RECENT_TXS),
      status,
    });
    void this.sampleNetwork();
  }

  /**
   * One sample of the network, at most every SAMPLE_MIN_MS: the node's figures over every chip
   * (unc_getNetworkStats; a list of chips stops at 1,000) and the current epoch. The first sample
   * also reads the node's per-epoch records (unc_getNetworkHistory), so the charts have a history
   * from the start. A failure is left to the probe to report.
   */
  private async sampleNetwork(): Promise<void> {
    if (this.sampling || this.stopped || !this.client) return;
    if (Date.now() - this.lastSample < Math.max(SAMPLE_MIN_MS, 5 * this.sampleMs)) return;
    this.sampling = true;
    this.lastSample = Date.now();
    const gen = this.generation;
    try {
      const first = this.snap.network.length === 0;
      const [stats, epoch, history] = await Promise.all([
        this.client.getNetworkStats(),
        this.client.call<EpochJson>('unc_getEpoch', []),
        first ? this.client.getNetworkHistory({ limit: HISTORY_EPOCHS }) : Promise.resolve(null),
      ]);
      this.sampleMs = Date.now() - this.lastSample;
      if (this.stopped || gen !== this.generation) return;
      let series = this.snap.network;
      if (history) {
        for (const e of [...history.epochs].reverse())
          if (e.height < stats.height) series = appendSample(series, sampleOf(e, true));
      }
      series = appendSample(series, sampleOf(stats, false));
      this.set({ currentEpoch: epoch, network: series });
    } catch {
      // The probe reports an unreachable node; the next block tries again.
    } finally {
      this.sampling = false;
    }
  }

  /** The transactions of the blocks that have any, newest first, up to `limit`. */
  private async collectTxs(blocks: BlockJson[], limit: number): Promise<RecentTx[]> {
    const out: RecentTx[] = [];
    for (const b of blocks) {
      if (out.length >= limit) break;
      if (b.txCount === 0) continue;
      const full = await this.client!.getBlock(b.height, true);
      const txs = full.txs as TxJson[];
      for (let i = txs.length - 1; i >= 0 && out.length < limit; i--) {
        out.push({ tx: txs[i]!, height: b.height, timeMs: b.timeMs });
      }
    }
    return out;
  }
}

/** Epoch records read when the explorer opens (one point each). */
export const HISTORY_EPOCHS = 50;

export function sampleOf(s: NetworkStats, recorded: boolean): NetworkSample {
  return {
    height: s.height,
    power: s.onlinePower,
    online: s.onlineChips,
    active: s.activeChips,
    activePower: s.activePower,
    rebuilt: recorded,
  };
}

/** Oldest first, one entry per height (a later sample of the same height replaces it), at most MAX_SAMPLES. */
export function appendSample(series: NetworkSample[], sample: NetworkSample): NetworkSample[] {
  const kept = series.filter((s) => s.height < sample.height);
  kept.push(sample);
  return kept.length > MAX_SAMPLES ? kept.slice(kept.length - MAX_SAMPLES) : kept;
}

/** Newest first, one entry per height, contiguous from the newest, at most WINDOW_BLOCKS. */
function mergeBlocks(newer: BlockJson[], older: BlockJson[]): BlockJson[] {
  const byHeight = new Map<number, BlockJson>();
  for (const b of older) byHeight.set(b.height, b);
  for (const b of newer) byHeight.set(b.height, b);
  const sorted = [...byHeight.values()].sort((a, b) => b.height - a.height);
  const out: BlockJson[] = [];
  for (const b of sorted) {
    if (out.length > 0 && out[out.length - 1]!.height !== b.height + 1) break;
    out.push(b);
    if (out.length >= WINDOW_BLOCKS) break;
  }
  return out;
}
