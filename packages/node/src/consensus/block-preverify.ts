/**
 * A proposed (or synced) block's signatures checked on every core before the block executes:
 * the transactions' own signatures the mempool did not already check, and the chip answers of its
 * heartbeats. Execution then runs as always, one transaction after another, and skips a check only
 * where a worker found that very (key, message, signature) triple valid; a signature that failed
 * (or that the gathering could not place) is checked again in order and fails there, so a block's
 * verdict never depends on this cache or on what a node's mempool holds.
 *
 * Execution stops at a block's first invalid transaction, so the pre-check must not do much more:
 * a proposer could otherwise put a forged signature in its first transaction and a block's worth
 * of valid ones after it, and make every validator's workers check all of them for a block that
 * fails at once. The checks go to the pool in block order, a chunk at a time with at most a few
 * chunks in flight, and nothing more is sent once a check has failed: the work past the first
 * failure is bounded by `chunkChecks × chunksAhead`, whatever the block holds.
 */
import {
  type Ed25519Check,
  ed25519CheckKey,
  ed25519Verify,
  envelopeFromBytes,
  envelopeSignatureCheck,
  forEachHeartbeatSignatureCheck,
  type PreverifyHead,
  type StateReader,
  type TxEnvelope,
  VerifiedSignatures,
} from '@unc/core';
import { type SignatureVerifier, VerifyPoolBusy, VerifyPoolClosed } from '../verify-pool.js';

/** Passes a pre-checker remembers by default (`VerifiedSignatures`, oldest half dropped first). */
export const PASSED_CAPACITY = 200_000;

export class BlockPreverifier {
  /** Checks found valid here, by their exact bytes; shared with admission when given (`opts.passed`). */
  private readonly passed: VerifiedSignatures;
  /** Each message's transactions decoded once, for the pre-check and then for execution. */
  private readonly decoded = new WeakMap<object, TxEnvelope[]>();

  /**
   * `shareWithCaller`: the calling thread checks a block's signatures beside the workers instead of
   * idling until they answer, so that with the default pool (defaultVerifyThreads: a worker per core where they run below it, Linux, else per core but one) a block's
   * checks use every core. With the VerifyPool it takes, when it would wait, every check of the
   * chunks in flight that no worker has started (`VerifyPool.assist`), so the split follows each
   * thread's speed; with a verifier without `assist`, a fixed share (one part in threads + 1).
   * Off by default: the calling thread (consensus, RPC) is then busy for that share, a chunk at a
   * time; the consensus driver turns it on.
   */
  constructor(
    private readonly pool: SignatureVerifier | null,
    private readonly opts: {
      shareWithCaller?: boolean;
      /** Checks sent to the pool at once (default: 64 per worker, at least 512). */
      chunkChecks?: number;
      /** Chunks on the pool at once, so that the workers never wait for the next (default 2). */
      chunksAhead?: number;
      /**
       * The passes to consult and add to: the node's admission queue shares them, so a transaction
       * whose signature admission checked is not checked again in a block, nor one checked in a
       * block again at admission. Default: a cache of this pre-checker's own.
       */
      passed?: VerifiedSignatures;
    } = {},
  ) {
    this.passed = opts.passed ?? new VerifiedSignatures(PASSED_CAPACITY);
  }

  /** The transactions of `txs`, decoded (memoized per block object); null if one is malformed. */
  decode(block: { txs: readonly Uint8Array[] }): TxEnvelope[] | null {
    const known = this.decoded.get(block);
    if (known) return known;
    let envs: TxEnvelope[];
    try {
      envs = block.txs.map((raw) => envelopeFromBytes(raw));
    } catch {
      return null;
    }
    this.decoded.set(block, envs);
    return envs;
  }

  /**
   * Checks, on the pool's consensus lane, the signatures of `envs` that `alreadyVerified` does not
   * vouch for and the dev-soft answers their heartbeats carry (placed on `state`, the head), in
   * block order, and stops sending more after the first that fails (the block fails there or
   * execution finds out which; either way the rest is its business).
   * Returns how many checks ran; a busy, closed or absent pool only means execution checks them
   * itself.
   * `abandoned`: once it says true (nobody will execute the block), nothing more is sent, so the
   * work left is what is already in flight (at most `chunksAhead` chunks).
   */
  async preverify(
    envs: readonly TxEnvelope[],
    state: StateReader,
    chainId: string,
    head: PreverifyHead,
    alreadyVerified: (env: TxEnvelope) => boolean,
    abandoned: () => boolean = () => false,
  ): Promise<number> {
    return (await this.preverifyAll(envs, state, chainId, head, alreadyVerified, abandoned)).checked;
  }

  /**
   * `preverify`, also saying whether it went through: `complete` is false when it stopped before
   * every check was made and passed (a failure, a busy or closed pool, abandoned). For a block
   * gathered on a guessed head (sync's look-ahead: the block before it had not run) a failure may
   * be the guess's, not the block's: the caller checks the rest again once that block has run.
   * `callerWaits`: whether someone waits on this pre-check now; the calling thread helps the
   * workers (`shareWithCaller`) only then. Sync's look-ahead starts a block's pre-check while the
   * block before it executes, and awaits it only once that block is done: a help at each of that
   * execution's awaits took the block's own thread for checks the workers would make meanwhile.
   */
  async preverifyAll(
    envs: readonly TxEnvelope[],
    state: StateReader,
    chainId: string,
    head: PreverifyHead,
    alreadyVerified: (env: TxEnvelope) => boolean,
    abandoned: () => boolean = () => false,
    callerWaits: () => boolean = () => true,
  ): Promise<{ checked: number; complete: boolean }> {
    if (!this.pool || this.pool.threads === 0) return { checked: 0, complete: true };
    const checks = blockChecks(envs, state, chainId, head, alreadyVerified);
    const pool = this.pool;
    const chunkSize = this.chunkSize(pool);
    const ahead = Math.max(1, this.opts.chunksAhead ?? 2);
    const inFlight: { theirs: OwnedCheck[]; pending: Promise<boolean[]> }[] = [];
    let next = 0;
    let stop = false;
    let checked = 0;
    for (;;) {
      if (abandoned()) stop = true;
      // This thread checks a share of one chunk per turn, no more: filling the pool at the start
      // (`chunksAhead` chunks) with a share of each kept it busy for all of them at once.
      let sharedThisTurn = false;
      while (!stop && inFlight.length < ahead && next < checks.length) {
        // Each check to run is copied, and its key made from the copy: a pass is remembered under
        // the very bytes that were verified, whatever later happens to the buffers the block's
        // transactions were decoded from (the key, message and signature are views into them, and
        // a verifier may read them later). Checks that already passed are skipped.
        const part: OwnedCheck[] = [];
        while (part.length < chunkSize && next < checks.length) {
          const own = ownCopy(checks[next++]!);
          if (!this.passed.hasKey(own.key)) part.push(own);
        }
        if (part.length === 0) continue;
        // A pool that lets this thread take the checks its workers have not started (assist, below)
        // gets every check; a fixed share is kept only for verifiers without it.
        const mine =
          this.opts.shareWithCaller && !pool.assist && !sharedThisTurn
            ? Math.floor(part.length / (pool.threads + 1))
            : 0;
        sharedThisTurn = true;
        const theirs = part.slice(mine);
        // Handed to the workers first, so that they run while this thread checks its share.
        const pending = pool.verify(theirs, 'consensus');
        pending.catch(() => {});
        inFlight.push({ theirs, pending });
        // This thread's share stops at its own first failure too: the block fails there (or
        // execution finds out where), and every check past it would be the attacker's free work
        // on the consensus thread, before anyone knows the block is valid (a proposal is checked
        // before it is decided; a synced block is pre-checked only once its commit verified).
        for (let i = 0; i < mine && !stop; i++) {
          const c = part[i]!;
          if (ed25519Verify(c.publicKey, c.message, c.signature)) this.passed.addKey(c.key);
          else stop = true;
          checked++;
        }
      }
      if (this.opts.shareWithCaller && pool.assist && inFlight.length > 0 && !stop) {
        // First let the caller go on with what it does before it waits for this pre-check (block
        // sync executes the block before this one: the workers check this one meanwhile), then,
        // once it waits, take whatever the workers have not started yet, instead of idling until
        // they answer: the split between this thread and the workers follows their speed.
        await null;
        if (abandoned()) stop = true;
        // While nobody waits, the workers alone (looked at again at the next answer). Then at most
        // a chunk's worth per turn (512 checks, about 40 ms, by default): consensus messages wait
        // meanwhile; and only this block's own checks: another call's failure says nothing of it.
        else if (
          callerWaits() &&
          pool.assist(
            true,
            chunkSize,
            inFlight.map((f) => f.pending),
          ).failed
        )
          stop = true;
      }
      const oldest = inFlight.shift();
      if (!oldest) break;
      let ok: boolean[];
      try {
        ok = await oldest.pending;
      } catch (err) {
        if (!(err instanceof VerifyPoolBusy || err instanceof VerifyPoolClosed)) throw err;
        // Busy, or closed (the node stops): nothing of this chunk passed; execution checks the
        // rest itself.
        stop = true;
        continue;
      }
      oldest.theirs.forEach((c, i) => {
        if (ok[i]) this.passed.addKey(c.key);
        else stop = true;
      });
      checked += oldest.theirs.length;
    }
    return { checked, complete: !stop && next >= checks.length };
  }

  /**
   * Puts every check of `envs` (gathered as `preverifyAll` does, on `state` as the head) on the
   * pool's consensus lane at once and returns without waiting, so that the block can execute on
   * this thread meanwhile (`Chain.validateProposalOptimistically`): execution takes on trust only
   * checks named here, and the block is accepted only once each of those came back valid
   * (`InFlightChecks.results`). Null when there is no pool to run them (execution checks inline).
   *
   * Unlike `preverifyAll`, nothing waits between chunks (this thread is executing), so a block's
   * checks all go to the workers even past one that fails: a proposer with a forged signature in
   * its first transaction costs the workers the block's checks and this thread one execution of
   * the block, as a forged last transaction costs this thread in order. The caller keeps that to
   * what an honest proposer causes (the driver: only the round's proposer, one block per round).
   */
  launch(
    envs: readonly TxEnvelope[],
    state: StateReader,
    chainId: string,
    head: PreverifyHead,
    alreadyVerified: (env: TxEnvelope) => boolean,
  ): InFlightChecks | null {
    if (!this.pool || this.pool.threads === 0) return null;
    const pool = this.pool;
    const chunkSize = this.chunkSize(pool);
    // The first chunk goes to the workers once a third of the block's checks is gathered, the rest
    // when gathered: sent whole at the end, the workers idled while this thread gathered (a chip
    // record decoded and a challenge hashed per answer, ~40% of a verify), a third of the block's
    // time on 2 cores. A third keeps a worker busy while this thread gathers the other two (a
    // verify costs about twice what gathering a check does). What a worker can start on meanwhile
    // is bounded by the VerifyPool, not by the chunk: it is handed `depth` batches of `batchSize`
    // (256 checks by default) and the rest waits until this thread reads an answer, which it does
    // only once the block has executed (then `results` takes the rest itself, `assist`). The
    // count is an estimate (every transaction's own check and every answer), as it only sizes
    // chunks.
    let limit = Math.min(chunkSize, Math.max(1, Math.ceil(expectedChecks(envs) / 3)));
    const chunks: InFlightChunk[] = [];
    const where = new Map<string, { chunk: number; index: number }>();
    let part: OwnedCheck[] = [];
    const send = () => {
      if (part.length === 0) return;
      const pending = pool.verify(part, 'consensus');
      const chunk: InFlightChunk = { checks: part, pending, settled: false, results: null };
      const settle = () => {
        chunk.settled = true;
      };
      pending.then(settle, settle);
      chunks.push(chunk);
      part = [];
    };
    const add = (c: Ed25519Check) => {
      // Copied, and keyed by the copy: what is vouched for is the very bytes the pool checks.
      const own = ownCopy(c);
      if (this.passed.hasKey(own.key) || where.has(own.key)) return;
      where.set(own.key, { chunk: chunks.length, index: part.length });
      part.push(own);
      if (part.length >= limit) {
        send();
        limit = chunkSize;
      }
    };
    forEachBlockCheck(envs, state, chainId, head, alreadyVerified, add);
    send();
    return new InFlightChecks(
      pool,
      this.passed,
      chunks,
      where,
      this.opts.shareWithCaller === true,
      chunkSize,
    );
  }

  /** Checks per chunk sent to the pool (and taken per turn when this thread helps). */
  private chunkSize(pool: SignatureVerifier): number {
    return Math.max(1, this.opts.chunkChecks ?? Math.max(512, 64 * pool.threads));
  }

  /** Whether the transaction's own signature was found valid here. */
  isTxVerified = (env: TxEnvelope): boolean => {
    const c = envelopeSignatureCheck(env);
    return this.passed.isVerified(c.publicKey, c.message, c.signature);
  };

  /** Whether the check with this `ed25519CheckKey` passed here (for `executeBlockAssuming`). */
  hasPassed = (key: string): boolean => this.passed.hasKey(key);

  /** For ExecuteOptions.isEd25519Verified. */
  isEd25519Verified = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean =>
    this.passed.isVerified(publicKey, message, signature);
}

/**
 * A block's signature checks, gathered on `state` as the head: each transaction's own (unless
 * `alreadyVerified`) and its heartbeat answers' (`preverifyAll` and `launch` alike).
 */
function blockChecks(
  envs: readonly TxEnvelope[],
  state: StateReader,
  chainId: string,
  head: PreverifyHead,
  alreadyVerified: (env: TxEnvelope) => boolean,
): Ed25519Check[] {
  const checks: Ed25519Check[] = [];
  forEachBlockCheck(envs, state, chainId, head, alreadyVerified, (c) => checks.push(c));
  return checks;
}

/** `blockChecks`, each check handed to `visit` as soon as it is gathered, in the same order. */
function forEachBlockCheck(
  envs: readonly TxEnvelope[],
  state: StateReader,
  chainId: string,
  head: PreverifyHead,
  alreadyVerified: (env: TxEnvelope) => boolean,
  visit: (check: Ed25519Check) => void,
): void {
  for (const env of envs) {
    if (!alreadyVerified(env)) visit(envelopeSignatureCheck(env));
    for (const action of env.stx.tx.actions) {
      if (action.type === 'heartbeat') {
        forEachHeartbeatSignatureCheck(state, chainId, env, head, visit);
        break;
      }
    }
  }
}

/** At most how many checks `forEachBlockCheck` gathers: each transaction's own and each answer. */
function expectedChecks(envs: readonly TxEnvelope[]): number {
  let n = 0;
  for (const env of envs) {
    n++;
    for (const action of env.stx.tx.actions) if (action.type === 'heartbeat') n += action.answers.length;
  }
  return n;
}

interface InFlightChunk {
  checks: OwnedCheck[];
  pending: Promise<boolean[]>;
  /** Whether `pending` has settled (answered or refused). */
  settled: boolean;
  /** Each check's result once known (from the pool, or from this thread if the pool refused). */
  results: boolean[] | null;
}

/**
 * A block's checks on the pool (`BlockPreverifier.launch`): which are in flight, for execution to
 * take on trust, and their results once the block has run.
 */
export class InFlightChecks {
  constructor(
    private readonly pool: SignatureVerifier,
    private readonly passed: VerifiedSignatures,
    private readonly chunks: InFlightChunk[],
    private readonly where: ReadonlyMap<string, { chunk: number; index: number }>,
    private readonly shareWithCaller: boolean,
    private readonly chunkSize: number,
  ) {}

  /** Checks sent to the pool. */
  get size(): number {
    return this.where.size;
  }

  /** Whether the check with this `ed25519CheckKey` is in flight (for `executeBlockAssuming`). */
  inFlight = (key: string): boolean => this.where.has(key);

  /**
   * The result of each check named (each must be in flight), in order, as far as the verdict
   * needs: the first that fails decides it (`settleAssumed` fails the block there, whatever comes
   * after), so once a check failed and every one before it passed, the rest are reported false
   * without being waited for or made. A proposer's forged first signature thus holds the caller
   * (the driver's queue) no longer than its chunk takes, not until the workers have checked the
   * whole block, and a chunk that never answers holds nothing once an earlier check failed.
   * Only the chunks that hold a named check are waited for; while they are out, this thread takes
   * their checks no worker has started (`shareWithCaller`, with a pool that can:
   * `VerifyPool.assist`), a chunk's worth per turn until none is left, and stops helping at its
   * first failure. A chunk the pool refused (busy, or closed as the node stops) is no verdict: its
   * named checks are made here, in the order named, stopping at the first that fails as in-order
   * execution does.
   * Passes are remembered, as `preverify`'s are.
   */
  async results(keys: readonly string[]): Promise<boolean[]> {
    const spots = keys.map((k) => {
      const at = this.where.get(k);
      if (!at) throw new Error('a result was asked for a check that is not in flight');
      return at;
    });
    const needed = [...new Set(spots.map((s) => s.chunk))];
    let helping = this.shareWithCaller && this.pool.assist !== undefined;
    /** Checks of refused chunks made here, by key (a check named twice is made once). */
    const madeHere = new Map<string, boolean>();
    const out: boolean[] = [];
    for (let i = 0; i < spots.length; i++) {
      const { chunk: c, index } = spots[i]!;
      const chunk = this.chunks[c]!;
      if (!chunk.results) {
        // Helped until the chunk is answered or no check of this block is left unstarted, a
        // chunk's worth per turn: helping once and then waiting left this block's checks queued
        // behind whatever the workers held first (another block put on the pool whole, e.g. the
        // next round's proposal), with this thread idle.
        while (helping && !chunk.settled) {
          const outstanding = needed
            .filter((n) => !this.chunks[n]!.settled)
            .map((n) => this.chunks[n]!.pending);
          const turn = this.pool.assist!(true, this.chunkSize, outstanding);
          if (turn.failed) helping = false;
          if (turn.checked === 0) break;
          // The workers' answers come in (and other callers run) between turns.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        try {
          const answered = await chunk.pending;
          chunk.results = answered;
          answered.forEach((ok, j) => {
            if (ok) this.passed.addKey(chunk.checks[j]!.key);
          });
        } catch (err) {
          if (!(err instanceof VerifyPoolBusy || err instanceof VerifyPoolClosed)) throw err;
          chunk.results = [];
        }
      }
      const done = chunk.results!;
      let ok: boolean;
      if (done.length > 0) ok = done[index] === true;
      else {
        // Refused by the pool: checked here, only what execution relied on.
        const check = chunk.checks[index]!;
        const known = madeHere.get(check.key);
        ok = known ?? ed25519Verify(check.publicKey, check.message, check.signature);
        madeHere.set(check.key, ok);
        if (ok) this.passed.addKey(check.key);
      }
      out.push(ok);
      // The block fails here whatever the checks after this one say: none is waited for or made.
      if (!ok) break;
    }
    while (out.length < spots.length) out.push(false);
    return out;
  }
}

interface OwnedCheck extends Ed25519Check {
  /** Its `ed25519CheckKey`, made once from these bytes. */
  key: string;
}

/** The check with its three parts copied into one buffer of its own, which nothing else can reach. */
function ownCopy(c: Ed25519Check): OwnedCheck {
  const k = c.publicKey.length;
  const m = c.message.length;
  const all = new Uint8Array(k + m + c.signature.length);
  all.set(c.publicKey, 0);
  all.set(c.message, k);
  all.set(c.signature, k + m);
  const publicKey = all.subarray(0, k);
  const message = all.subarray(k, k + m);
  const signature = all.subarray(k + m);
  return { publicKey, message, signature, key: ed25519CheckKey(publicKey, message, signature) };
}
