/**
 * A deterministic simulator of the consensus protocol: N validators (the real Tendermint state
 * machine, PrivValidator, VRF beacon and proposer selection) in one process, over a simulated
 * network with delay, loss, duplication, reordering and partitions, with crashes and restarts and
 * with Byzantine validators. Everything random comes from one seed, so a failing run replays
 * exactly. There is no clock: simulated time is a number advanced by the event queue.
 *
 * The model follows the paper's partial synchrony: before GST (global stabilisation time)
 * messages may be lost, partitions cut links and nodes crash; from GST on every link delivers
 * within a bound and every node is up. Lost messages are made good by gossip: a node that has not
 * moved for a gossip interval re-sends what it knows of the current height, and nodes announce
 * their height so that peers ahead of them send the decided blocks with their certificates.
 *
 * Checked on every run:
 * - agreement: no two honest nodes commit different blocks at one height;
 * - every commit certificate an honest node produces carries more than 2/3 of the voting power
 *   (checked against the true 2/3 rule even when the run uses a broken quorum rule);
 * - no evidence ever accuses an honest validator (the PrivValidator works across restarts);
 * - progress: after GST every honest node commits up to a target height beyond the one reached
 *   at GST, within a time budget.
 */
import { fromHex, toHex, utf8 } from '../bytes.js';
import { ed25519PublicKey, ed25519Verify } from '../crypto/ed25519.js';
import { sha256, taggedHash } from '../crypto/hash.js';
import { nextBeacon, verifyBeacon } from './beacon.js';
import { u32be, u64be } from './bytes.js';
import {
  type CommitCertificate,
  type ConsensusEvidence,
  certificateVotes,
  evidenceOffender,
  type Proposal,
  signProposal,
  signVote,
  type VerifyFn,
  type Vote,
  verifyCommitCertificate,
  verifyConsensusEvidence,
} from './messages.js';
import { PrivValidator } from './privval.js';
import { SimRng } from './rng.js';
import { type ConsensusAction, Tendermint, type TimeoutParams, type TimeoutStep } from './tendermint.js';
import { BFT_QUORUM, type QuorumRule, ValidatorSet } from './validators.js';

export type ByzantineKind =
  /** Proposes two different valid blocks to two halves of the network, and votes for each there. */
  | 'equivocating-proposer'
  /** Every vote it casts goes to half of its peers; the other half gets a conflicting vote. */
  | 'double-voter'
  /** Never sends anything. */
  | 'silent';

export const BYZANTINE_KINDS: readonly ByzantineKind[] = ['equivocating-proposer', 'double-voter', 'silent'];

export interface PartitionSpec {
  startMs: number;
  endMs: number;
  /** Node indices; links between different groups are cut. A node in no group is isolated. */
  groups: number[][];
}

export interface CrashSpec {
  node: number;
  atMs: number;
  restartMs: number;
}

export interface SimFaults {
  minDelayMs: number;
  maxDelayMs: number;
  /** Before GST: probability that a message is lost. */
  lossRate: number;
  /** Probability that a message is delivered twice (at any time). */
  duplicateRate: number;
  /** Before GST: probability that a message is held back by up to three maximum delays. */
  reorderRate: number;
  gstMs: number;
  /** From GST on, every delay is at most this. */
  postGstMaxDelayMs: number;
  partitions: PartitionSpec[];
  crashes: CrashSpec[];
}

export interface SimConfig {
  seed: number;
  /** Voting power of each validator; node i has validator key i. */
  validators: bigint[];
  byzantine: { node: number; kind: ByzantineKind }[];
  /** Every honest node must commit at least this many heights. */
  heights: number;
  faults: SimFaults;
  timeouts?: TimeoutParams;
  /**
   * The quorum rule the nodes run. Anything but 2/3 is unsafe; it exists so tests can check that
   * the checker notices.
   */
  quorum?: QuorumRule;
  /**
   * The rule commit certificates are checked against: 2/3 unless a test wants to see the
   * agreement check catch a broken quorum rule on its own.
   */
  certificateRule?: QuorumRule;
  /**
   * Restarted nodes lose their PrivValidator state, as a node whose disk lost it would. Unsafe:
   * it exists so tests can watch the double-sign check catch the consequences.
   */
  forgetSigningStateOnRestart?: boolean;
  /** End the run at the first safety violation (default), or keep going to see what follows. */
  continueAfterViolation?: boolean;
  /** After GST, honest nodes must commit this many heights past the highest committed at GST. */
  heightsAfterGst?: number;
  gossipIntervalMs?: number;
  /** Pause between committing a block and starting the next height (the block interval). */
  commitDelayMs?: number;
  /** Simulated time after GST within which the target heights must be committed. */
  livenessBudgetMs?: number;
  maxEvents?: number;
  /** Collect a human-readable trace of commits, faults and evidence in the report. */
  trace?: boolean;
  /**
   * 'vrf' (the default) runs the real ECVRF beacon. 'hash' replaces it with an unproven hash of
   * (previous beacon, height, proposer), for long sweeps where the curve arithmetic would
   * dominate the run time and the point under test is agreement, not the beacon.
   */
  beacon?: 'vrf' | 'hash';
}

export interface SimReport {
  seed: number;
  ok: boolean;
  violations: string[];
  nodes: number;
  byzantine: string[];
  /** Heights committed by each node, in node order. */
  committed: number[];
  target: number;
  heightAtGst: number;
  /** Highest round in which a block was committed. */
  maxCommitRound: number;
  messages: { sent: number; delivered: number; dropped: number; duplicated: number };
  /** Evidence reports by honest nodes (all against Byzantine validators, or it is a violation). */
  evidence: number;
  endTimeMs: number;
  events: number;
  trace: string[];
}

export const SIM_CHAIN_ID = 'unc-sim';

export const SIM_TIMEOUTS: TimeoutParams = Object.freeze({
  proposeMs: 1000,
  proposeDeltaMs: 300,
  prevoteMs: 400,
  prevoteDeltaMs: 200,
  precommitMs: 400,
  precommitDeltaMs: 200,
});

// ---------------------------------------------------------------------------------------------
// Blocks: just enough content for validity to mean something (parent, proposer, VRF beacon).

interface SimBlock {
  height: bigint;
  prevHash: Uint8Array;
  proposer: Uint8Array;
  beacon: Uint8Array;
  vrfProof: Uint8Array;
  /** Lets a Byzantine proposer make two different blocks at one height. */
  salt: number;
}

function simBlockHash(b: SimBlock): Uint8Array {
  return taggedHash(
    'UNC/sim-block',
    u64be(b.height),
    b.prevHash,
    b.proposer,
    b.beacon,
    b.vrfProof,
    u32be(b.salt),
  );
}

const GENESIS_HASH = new Uint8Array(32);

function hashBeacon(prevBeacon: Uint8Array, height: bigint, proposer: Uint8Array): Uint8Array {
  return taggedHash('UNC/sim-hash-beacon', prevBeacon, u64be(height), proposer);
}

// ---------------------------------------------------------------------------------------------
// Network messages and simulator events

type NetMessage =
  | { type: 'proposal'; proposal: Proposal }
  | { type: 'vote'; vote: Vote }
  | { type: 'status'; height: bigint }
  | { type: 'decision'; proposal: Proposal; certificate: CommitCertificate };

type SimEvent =
  | { kind: 'deliver'; from: number; to: number; msg: NetMessage }
  | { kind: 'timer'; node: number; incarnation: number; height: bigint; round: number; step: TimeoutStep }
  | { kind: 'gossip'; node: number }
  | { kind: 'next-height'; node: number; incarnation: number }
  | { kind: 'crash'; node: number }
  | { kind: 'restart'; node: number }
  | { kind: 'gst' };

interface Scheduled {
  time: number;
  seq: number;
  event: SimEvent;
}

/** Binary min-heap on (time, seq): equal times run in scheduling order, deterministically. */
class EventQueue {
  private heap: Scheduled[] = [];
  private seq = 0;

  push(time: number, event: SimEvent): void {
    const item = { time, seq: this.seq++, event };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): Scheduled | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  get size(): number {
    return this.heap.length;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}

interface CommittedBlock {
  hash: Uint8Array;
  block: SimBlock;
  certificate: CommitCertificate;
  proposal: Proposal;
}

interface SimNode {
  index: number;
  seed: Uint8Array;
  publicKey: Uint8Array;
  byzantine: ByzantineKind | null;
  /** Survives crashes: the "disk" of the private validator. */
  privval: PrivValidator;
  /** Survives crashes: committed blocks, height i + 1 at index i. */
  chain: CommittedBlock[];
  machine: Tendermint | null;
  up: boolean;
  /** Timers from before a crash carry an older incarnation and are ignored. */
  incarnation: number;
  /** Messages for heights this node has not reached yet, replayed when it gets there. */
  future: NetMessage[];
  /** Between a commit and the start of the next height (the block interval). */
  awaitingStart: boolean;
  /** Signatures of the proposals of the current height already relayed. */
  relayed: Set<string>;
  lastGossipKey: string;
  /** Byzantine nodes: the two halves of the network they lie to differently. */
  halves: [number[], number[]];
  /** Equivocating proposer: the second block it shows half of the network, by first block. */
  twins: Map<string, Uint8Array>;
  salt: number;
}

const MAX_FUTURE_MESSAGES = 5_000;
/** Decisions sent per status message: enough to catch a restarted node up quickly. */
const DECISIONS_PER_STATUS = 3;

/** Runs one simulation to completion and checks it; never throws for a protocol failure. */
export function runSimulation(config: SimConfig): SimReport {
  return new Simulation(config).run();
}

class Simulation {
  private readonly rng: SimRng;
  private readonly queue = new EventQueue();
  private readonly nodes: SimNode[];
  private readonly validators: ValidatorSet;
  /** The same members with the true 2/3 rule (unless told otherwise), for checking certificates. */
  private readonly bftValidators: ValidatorSet;
  private readonly timeouts: TimeoutParams;
  private readonly genesisBeacon: Uint8Array;
  private readonly blocks = new Map<string, SimBlock>();
  private readonly committedAt = new Map<bigint, { hash: string; node: number }>();
  private readonly verifyCache = new Map<string, boolean>();
  private readonly beaconCache = new Map<string, Uint8Array | null>();
  private readonly proveCache = new Map<string, { beacon: Uint8Array; proof: Uint8Array }>();
  private readonly violations: string[] = [];
  private readonly trace: string[] = [];
  private readonly stats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0 };
  private now = 0;
  private events = 0;
  private evidence = 0;
  private maxCommitRound = 0;
  private gstReached = false;
  private heightAtGst = 0;
  private target: number;
  private readonly verify: VerifyFn;

  constructor(private readonly config: SimConfig) {
    validateConfig(config);
    this.rng = new SimRng(config.seed, 'network');
    this.timeouts = config.timeouts ?? SIM_TIMEOUTS;
    this.genesisBeacon = taggedHash('UNC/sim-genesis', u32be(config.seed >>> 0));
    this.target = config.heights;
    this.verify = (pk, msg, sig) => this.cachedVerify(pk, msg, sig);
    const byzantine = new Map(config.byzantine.map((b) => [b.node, b.kind]));
    const n = config.validators.length;
    const splitter = new SimRng(config.seed, 'byzantine-halves');
    this.nodes = config.validators.map((_, index) => {
      const seed = sha256(utf8('UNC/sim-validator'), u32be(config.seed >>> 0), u32be(index));
      const others = splitter.shuffle([...Array(n).keys()].filter((j) => j !== index));
      const half = Math.ceil(others.length / 2);
      return {
        index,
        seed,
        publicKey: ed25519PublicKey(seed),
        byzantine: byzantine.get(index) ?? null,
        privval: new PrivValidator(seed, SIM_CHAIN_ID),
        chain: [],
        machine: null,
        up: true,
        incarnation: 0,
        future: [],
        awaitingStart: false,
        relayed: new Set(),
        lastGossipKey: '',
        halves: [others.slice(0, half), others.slice(half)],
        twins: new Map(),
        salt: 0,
      };
    });
    const members = this.nodes.map((node, i) => ({
      publicKey: node.publicKey,
      power: config.validators[i]!,
    }));
    this.validators = new ValidatorSet(members, config.quorum ?? BFT_QUORUM);
    this.bftValidators = new ValidatorSet(members, config.certificateRule ?? BFT_QUORUM);
  }

  run(): SimReport {
    const { faults } = this.config;
    const gossipInterval = this.config.gossipIntervalMs ?? 1000;
    const deadline = faults.gstMs + (this.config.livenessBudgetMs ?? 600_000);
    const maxEvents = this.config.maxEvents ?? 3_000_000;

    for (const node of this.nodes) {
      if (node.byzantine === 'silent') continue;
      this.startMachine(node);
      this.queue.push(this.rng.int(gossipInterval), { kind: 'gossip', node: node.index });
    }
    for (const c of faults.crashes) {
      this.queue.push(c.atMs, { kind: 'crash', node: c.node });
      this.queue.push(c.restartMs, { kind: 'restart', node: c.node });
    }
    for (const p of faults.partitions) {
      this.log(p.startMs, `partition ${JSON.stringify(p.groups)} until ${p.endMs}`);
    }
    this.queue.push(faults.gstMs, { kind: 'gst' });

    let finished = false;
    for (;;) {
      const next = this.queue.pop();
      if (!next) break;
      if (next.time > deadline || this.events >= maxEvents) break;
      this.now = next.time;
      this.events++;
      this.dispatch(next.event, gossipInterval);
      if (this.violations.length > 0 && !this.config.continueAfterViolation) {
        finished = true;
        break;
      }
      if (this.gstReached && this.allHonestReached(this.target)) {
        finished = true;
        break;
      }
    }
    if (!finished) {
      const why = this.events >= maxEvents ? `after ${maxEvents} events` : `by ${deadline} ms`;
      this.violations.push(
        `liveness: honest nodes did not all commit ${this.target} heights ${why} (GST ${faults.gstMs} ms, ` +
          `committed ${this.honest()
            .map((n) => `${n.index}:${n.chain.length}`)
            .join(' ')})`,
      );
    }
    return {
      seed: this.config.seed,
      ok: this.violations.length === 0,
      violations: [...this.violations],
      nodes: this.nodes.length,
      byzantine: this.config.byzantine.map((b) => `${b.node}:${b.kind}`),
      committed: this.nodes.map((n) => n.chain.length),
      target: this.target,
      heightAtGst: this.heightAtGst,
      maxCommitRound: this.maxCommitRound,
      messages: { ...this.stats },
      evidence: this.evidence,
      endTimeMs: this.now,
      events: this.events,
      trace: this.trace,
    };
  }

  private dispatch(event: SimEvent, gossipInterval: number): void {
    switch (event.kind) {
      case 'deliver':
        this.deliver(event.from, event.to, event.msg);
        break;
      case 'timer': {
        const node = this.nodes[event.node]!;
        if (!node.up || !node.machine || node.incarnation !== event.incarnation) return;
        const { height, round, step } = event;
        this.perform(node, node.machine.handle({ type: 'timeout', height, round, step }));
        break;
      }
      case 'gossip': {
        const node = this.nodes[event.node]!;
        this.gossip(node);
        this.queue.push(this.now + gossipInterval, event);
        break;
      }
      case 'next-height': {
        const node = this.nodes[event.node]!;
        if (!node.up || !node.machine || node.incarnation !== event.incarnation) return;
        this.startHeight(node);
        break;
      }
      case 'crash': {
        const node = this.nodes[event.node]!;
        if (!node.up) return;
        node.up = false;
        node.machine = null;
        node.incarnation++;
        node.future = [];
        this.log(this.now, `node ${node.index} crashes at height ${node.chain.length + 1}`);
        break;
      }
      case 'restart': {
        const node = this.nodes[event.node]!;
        if (node.up) return;
        node.up = true;
        if (this.config.forgetSigningStateOnRestart)
          node.privval = new PrivValidator(node.seed, SIM_CHAIN_ID);
        this.log(this.now, `node ${node.index} restarts with ${node.chain.length} blocks`);
        this.startMachine(node);
        break;
      }
      case 'gst': {
        this.gstReached = true;
        this.heightAtGst = Math.max(0, ...this.honest().map((n) => n.chain.length));
        this.target = Math.max(this.config.heights, this.heightAtGst + (this.config.heightsAfterGst ?? 2));
        this.log(this.now, `GST: highest honest height ${this.heightAtGst}, target ${this.target}`);
        break;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Nodes

  private startMachine(node: SimNode): void {
    node.machine = new Tendermint({
      chainId: SIM_CHAIN_ID,
      timeouts: this.timeouts,
      privval: node.privval,
      verify: this.verify,
    });
    this.startHeight(node);
  }

  private startHeight(node: SimNode): void {
    const machine = node.machine!;
    node.awaitingStart = false;
    node.relayed = new Set();
    this.perform(
      node,
      machine.handle({
        type: 'start',
        height: BigInt(node.chain.length + 1),
        validators: this.validators,
        beacon: this.tipBeacon(node),
      }),
    );
    const pending = node.future;
    node.future = [];
    for (const msg of pending) this.feed(node, msg);
  }

  private tipBeacon(node: SimNode): Uint8Array {
    return node.chain.at(-1)?.block.beacon ?? this.genesisBeacon;
  }

  private tipHash(node: SimNode): Uint8Array {
    return node.chain.at(-1)?.hash ?? GENESIS_HASH;
  }

  private honest(): SimNode[] {
    return this.nodes.filter((n) => n.byzantine === null);
  }

  private allHonestReached(height: number): boolean {
    return this.honest().every((n) => n.chain.length >= height);
  }

  /** Carries out a state machine's actions; actions can produce more (a block, the next height). */
  private perform(node: SimNode, actions: ConsensusAction[]): void {
    const queue = [...actions];
    for (let action = queue.shift(); action; action = queue.shift()) {
      if (!node.machine) return;
      switch (action.type) {
        case 'broadcast-proposal':
          this.broadcastProposal(node, action.proposal);
          break;
        case 'broadcast-vote':
          this.broadcastVote(node, action.vote);
          break;
        case 'schedule-timeout':
          this.queue.push(this.now + action.delayMs, {
            kind: 'timer',
            node: node.index,
            incarnation: node.incarnation,
            height: action.height,
            round: action.round,
            step: action.step,
          });
          break;
        case 'request-value': {
          const blockHash = this.buildBlock(node, 0);
          queue.push(
            ...node.machine.handle({ type: 'value', height: action.height, round: action.round, blockHash }),
          );
          break;
        }
        case 'commit':
          this.commit(node, action);
          node.awaitingStart = true;
          this.queue.push(this.now + (this.config.commitDelayMs ?? 1000), {
            kind: 'next-height',
            node: node.index,
            incarnation: node.incarnation,
          });
          return;
        case 'evidence':
          this.onEvidence(node, action.evidence);
          break;
      }
    }
  }

  private buildBlock(node: SimNode, salt: number): Uint8Array {
    const height = BigInt(node.chain.length + 1);
    const prevBeacon = this.tipBeacon(node);
    const key = `${node.index}:${height}:${toHex(prevBeacon)}`;
    let vrf = this.proveCache.get(key);
    if (!vrf) {
      vrf =
        this.config.beacon === 'hash'
          ? { beacon: hashBeacon(prevBeacon, height, node.publicKey), proof: new Uint8Array(0) }
          : nextBeacon(prevBeacon, height, node.seed);
      this.proveCache.set(key, vrf);
    }
    const block: SimBlock = {
      height,
      prevHash: this.tipHash(node),
      proposer: node.publicKey,
      beacon: vrf.beacon,
      vrfProof: vrf.proof,
      salt,
    };
    const hash = simBlockHash(block);
    this.blocks.set(toHex(hash), block);
    return hash;
  }

  /** The driver's validity check: right parent, a validator as proposer, a valid VRF beacon. */
  private isValidBlock(node: SimNode, blockHash: Uint8Array): boolean {
    const block = this.blocks.get(toHex(blockHash));
    if (!block) return false;
    if (block.height !== BigInt(node.chain.length + 1)) return false;
    if (toHex(block.prevHash) !== toHex(this.tipHash(node))) return false;
    if (!this.validators.has(block.proposer)) return false;
    const prevBeacon = this.tipBeacon(node);
    const key = `${toHex(block.proposer)}:${block.height}:${toHex(prevBeacon)}:${toHex(block.vrfProof)}`;
    let beacon = this.beaconCache.get(key);
    if (beacon === undefined) {
      beacon =
        this.config.beacon === 'hash'
          ? hashBeacon(prevBeacon, block.height, block.proposer)
          : verifyBeacon(prevBeacon, block.height, block.proposer, block.vrfProof);
      this.beaconCache.set(key, beacon);
    }
    return beacon !== null && toHex(beacon) === toHex(block.beacon);
  }

  private commit(node: SimNode, action: Extract<ConsensusAction, { type: 'commit' }>): void {
    const height = action.height;
    const hashHex = toHex(action.blockHash);
    const block = this.blocks.get(hashHex);
    if (node.byzantine === null) {
      const where = `height ${height}, node ${node.index}, round ${action.round}`;
      if (!block) this.violations.push(`${where}: committed a block nobody built`);
      else if (toHex(block.prevHash) !== toHex(this.tipHash(node))) {
        this.violations.push(`${where}: committed block does not extend the node's chain`);
      }
      if (toHex(action.certificate.blockHash) !== hashHex || action.certificate.height !== height) {
        this.violations.push(`${where}: certificate is for another block`);
      }
      const check = verifyCommitCertificate(
        SIM_CHAIN_ID,
        this.bftValidators,
        action.certificate,
        this.verify,
      );
      if (!check.ok)
        this.violations.push(`${where}: commit certificate invalid under the 2/3 rule: ${check.reason}`);
      const earlier = this.committedAt.get(height);
      if (earlier && earlier.hash !== hashHex) {
        this.violations.push(
          `agreement: height ${height} committed as ${earlier.hash.slice(0, 16)} by node ${earlier.node} ` +
            `and as ${hashHex.slice(0, 16)} by node ${node.index}`,
        );
      } else if (!earlier) this.committedAt.set(height, { hash: hashHex, node: node.index });
      this.maxCommitRound = Math.max(this.maxCommitRound, action.round);
      this.log(
        this.now,
        `node ${node.index} commits height ${height} round ${action.round}: ${hashHex.slice(0, 12)}`,
      );
    }
    if (block) {
      node.chain.push({
        hash: action.blockHash,
        block,
        certificate: action.certificate,
        proposal: action.proposal,
      });
    }
  }

  private onEvidence(node: SimNode, evidence: ConsensusEvidence): void {
    if (node.byzantine !== null) return;
    const problem = verifyConsensusEvidence(SIM_CHAIN_ID, this.validators, evidence, this.verify);
    if (problem) this.violations.push(`node ${node.index} reported invalid evidence: ${problem}`);
    const offender = this.nodes.findIndex((n) => toHex(n.publicKey) === toHex(evidenceOffender(evidence)));
    if (offender >= 0 && this.nodes[offender]!.byzantine === null) {
      this.violations.push(
        `honest validator ${offender} double-signed (${evidence.type}), seen by node ${node.index}`,
      );
    }
    this.evidence++;
    this.log(this.now, `node ${node.index} reports ${evidence.type} by validator ${offender}`);
  }

  // -------------------------------------------------------------------------------------------
  // Sending: honest nodes tell everyone the same thing; Byzantine ones do not.

  private peers(node: SimNode): number[] {
    return this.nodes.filter((n) => n.index !== node.index).map((n) => n.index);
  }

  private broadcastProposal(node: SimNode, proposal: Proposal): void {
    if (this.config.trace) {
      this.log(
        this.now,
        `node ${node.index} proposes ${toHex(proposal.blockHash).slice(0, 12)} at ${proposal.height}/${proposal.round} (pol ${proposal.polRound})`,
      );
    }
    if (node.byzantine !== 'equivocating-proposer') {
      for (const to of this.peers(node)) this.send(node.index, to, { type: 'proposal', proposal });
      return;
    }
    const twinHash = this.buildBlock(node, ++node.salt);
    node.twins.set(toHex(proposal.blockHash), twinHash);
    const twin = signProposal(
      SIM_CHAIN_ID,
      {
        height: proposal.height,
        round: proposal.round,
        polRound: -1,
        blockHash: twinHash,
        proposer: node.publicKey,
      },
      node.seed,
    );
    for (const to of node.halves[0]) this.send(node.index, to, { type: 'proposal', proposal });
    for (const to of node.halves[1]) this.send(node.index, to, { type: 'proposal', proposal: twin });
  }

  private broadcastVote(node: SimNode, vote: Vote): void {
    if (this.config.trace) {
      const value = vote.blockHash ? toHex(vote.blockHash).slice(0, 12) : 'nil';
      this.log(this.now, `node ${node.index} ${vote.type}s ${value} at ${vote.height}/${vote.round}`);
    }
    let other: Vote | null = null;
    if (node.byzantine === 'equivocating-proposer' && vote.blockHash) {
      const twin = node.twins.get(toHex(vote.blockHash));
      if (twin) other = signVote(SIM_CHAIN_ID, { ...withoutSignature(vote), blockHash: twin }, node.seed);
    } else if (node.byzantine === 'double-voter') {
      const blockHash = vote.blockHash ? null : this.someOtherBlock(vote.height);
      other = signVote(SIM_CHAIN_ID, { ...withoutSignature(vote), blockHash }, node.seed);
    }
    if (!other) {
      for (const to of this.peers(node)) this.send(node.index, to, { type: 'vote', vote });
      return;
    }
    for (const to of node.halves[0]) this.send(node.index, to, { type: 'vote', vote });
    for (const to of node.halves[1]) this.send(node.index, to, { type: 'vote', vote: other });
  }

  /** A block hash to vote for instead of nil: a real block at that height if there is one. */
  private someOtherBlock(height: bigint): Uint8Array {
    for (const [hex, block] of this.blocks) if (block.height === height) return fromHex(hex);
    return sha256(u64be(height), u32be(this.rng.nextU32()));
  }

  private gossip(node: SimNode): void {
    if (!node.up || !node.machine) return;
    const height = BigInt(node.chain.length + 1);
    for (const to of this.peers(node)) this.send(node.index, to, { type: 'status', height });
    const snap = node.machine.snapshot();
    const key = `${snap.height}:${snap.round}:${snap.step}`;
    // Re-send only when stuck: while the node moves, its fresh messages are doing the work.
    if (key === node.lastGossipKey) {
      const { proposals, votes } = node.machine.gossip();
      for (const to of this.peers(node)) {
        for (const proposal of proposals) this.send(node.index, to, { type: 'proposal', proposal });
        for (const vote of votes) this.send(node.index, to, { type: 'vote', vote });
      }
    }
    node.lastGossipKey = key;
  }

  // -------------------------------------------------------------------------------------------
  // The network

  private send(from: number, to: number, msg: NetMessage): void {
    const f = this.config.faults;
    this.stats.sent++;
    if (this.partitioned(from, to) || (!this.gstReached && this.rng.chance(f.lossRate))) {
      this.stats.dropped++;
      return;
    }
    this.queue.push(this.now + this.delay(), { kind: 'deliver', from, to, msg });
    if (this.rng.chance(f.duplicateRate)) {
      this.stats.duplicated++;
      this.queue.push(this.now + this.delay(), { kind: 'deliver', from, to, msg });
    }
  }

  private delay(): number {
    const f = this.config.faults;
    if (this.gstReached) return this.rng.range(f.minDelayMs, Math.max(f.minDelayMs, f.postGstMaxDelayMs));
    let d = this.rng.range(f.minDelayMs, f.maxDelayMs);
    if (this.rng.chance(f.reorderRate)) d += this.rng.int(3 * f.maxDelayMs + 1);
    return d;
  }

  private partitioned(from: number, to: number): boolean {
    if (this.gstReached) return false;
    for (const p of this.config.faults.partitions) {
      if (this.now < p.startMs || this.now >= p.endMs) continue;
      const a = p.groups.findIndex((g) => g.includes(from));
      const b = p.groups.findIndex((g) => g.includes(to));
      if (a < 0 || b < 0 || a !== b) return true;
    }
    return false;
  }

  private deliver(from: number, to: number, msg: NetMessage): void {
    const node = this.nodes[to]!;
    if (!node.up || !node.machine) {
      this.stats.dropped++;
      return;
    }
    this.stats.delivered++;
    if (msg.type === 'status') {
      const have = node.chain.length;
      const last = Math.min(have, Number(msg.height) + DECISIONS_PER_STATUS - 1);
      for (let h = Number(msg.height); h <= last; h++) {
        const c = node.chain[h - 1]!;
        this.send(to, from, { type: 'decision', proposal: c.proposal, certificate: c.certificate });
      }
      return;
    }
    this.feed(node, msg);
  }

  /** Hands a proposal, vote or decision to the node's state machine, or keeps it for later. */
  private feed(node: SimNode, msg: NetMessage): void {
    if (!node.machine) return;
    const current = BigInt(node.chain.length + 1);
    if (msg.type === 'decision') {
      this.feed(node, { type: 'proposal', proposal: msg.proposal });
      for (const vote of certificateVotes(msg.certificate)) this.feed(node, { type: 'vote', vote });
      return;
    }
    if (msg.type === 'status') return;
    const height = msg.type === 'proposal' ? msg.proposal.height : msg.vote.height;
    if (height < current) return;
    if (height > current || node.awaitingStart) {
      if (node.future.length < MAX_FUTURE_MESSAGES) node.future.push(msg);
      return;
    }
    if (msg.type === 'proposal') {
      // Gossip: an honest node passes each proposal on once, so that an equivocating proposer
      // cannot keep its two halves of the network from seeing both of its proposals.
      const id = toHex(msg.proposal.signature);
      if (node.byzantine === null && !node.relayed.has(id)) {
        node.relayed.add(id);
        for (const to of this.peers(node)) this.send(node.index, to, msg);
      }
      const valid = this.isValidBlock(node, msg.proposal.blockHash);
      this.perform(node, node.machine.handle({ type: 'proposal', proposal: msg.proposal, valid }));
    } else {
      this.perform(node, node.machine.handle({ type: 'vote', vote: msg.vote }));
    }
  }

  private cachedVerify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    // Sound as a cache key: the result is a function of exactly these three byte strings.
    const key = `${toHex(publicKey)}${toHex(signature)}${toHex(message)}`;
    let ok = this.verifyCache.get(key);
    if (ok === undefined) {
      ok = ed25519Verify(publicKey, message, signature);
      this.verifyCache.set(key, ok);
    }
    return ok;
  }

  private log(time: number, line: string): void {
    if (this.config.trace) this.trace.push(`${String(time).padStart(7)} ms  ${line}`);
  }
}

function withoutSignature(vote: Vote): Omit<Vote, 'signature'> {
  const { signature: _, ...rest } = vote;
  return rest;
}

function validateConfig(config: SimConfig): void {
  const n = config.validators.length;
  if (n === 0) throw new RangeError('a simulation needs validators');
  const f = config.faults;
  if (f.minDelayMs < 0 || f.maxDelayMs < f.minDelayMs) throw new RangeError('bad delay range');
  for (const c of f.crashes) {
    if (c.node < 0 || c.node >= n) throw new RangeError(`crash of unknown node ${c.node}`);
    if (!(c.atMs < c.restartMs && c.restartMs <= f.gstMs)) {
      throw new RangeError('a crashed node must restart by GST');
    }
  }
  for (const p of f.partitions) {
    if (!(p.startMs < p.endMs && p.endMs <= f.gstMs)) throw new RangeError('a partition must heal by GST');
  }
  for (const b of config.byzantine) {
    if (b.node < 0 || b.node >= n) throw new RangeError(`unknown Byzantine node ${b.node}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios for seed sweeps

/**
 * The scenario a sweep runs for `seed`: 4 to 7 validators with random powers, Byzantine
 * validators of every kind holding less than 1/3 of the power, and random delays, loss,
 * duplication, reordering, partitions and crashes before GST. The bench CLI and the tests share
 * it, so a failing seed from either replays in the other.
 */
export function scenarioForSeed(seed: number): SimConfig {
  const rng = new SimRng(seed, 'scenario');
  const n = rng.range(4, 7);
  const validators = Array.from({ length: n }, () => BigInt(rng.range(1, 10)));
  const total = validators.reduce((a, b) => a + b, 0n);

  const byzantine: { node: number; kind: ByzantineKind }[] = [];
  let byzantinePower = 0n;
  const wanted = rng.int(3);
  for (const node of rng.shuffle([...Array(n).keys()])) {
    if (byzantine.length >= wanted) break;
    const power = validators[node]!;
    if ((byzantinePower + power) * 3n >= total) continue;
    byzantinePower += power;
    byzantine.push({ node, kind: rng.pick(BYZANTINE_KINDS) });
  }
  const honest = [...Array(n).keys()].filter((i) => !byzantine.some((b) => b.node === i));

  const gstMs = rng.range(2_000, 8_000);
  const minDelayMs = rng.range(1, 20);
  const maxDelayMs = minDelayMs + rng.range(0, 400);
  const partitions: PartitionSpec[] = [];
  for (let k = rng.int(3); k > 0; k--) {
    const startMs = rng.int(gstMs - 1);
    const endMs = rng.range(startMs + 1, gstMs);
    const shuffled = rng.shuffle([...Array(n).keys()]);
    const cut = rng.range(1, n - 1);
    partitions.push({ startMs, endMs, groups: [shuffled.slice(0, cut), shuffled.slice(cut)] });
  }
  const crashes: CrashSpec[] = [];
  for (let k = rng.int(3); k > 0; k--) {
    const node = rng.pick(honest);
    const atMs = rng.int(gstMs - 1);
    crashes.push({ node, atMs, restartMs: rng.range(atMs + 1, gstMs) });
  }
  return {
    seed,
    validators,
    byzantine,
    heights: 3,
    faults: {
      minDelayMs,
      maxDelayMs,
      lossRate: rng.chance(0.7) ? rng.next() * 0.3 : 0,
      duplicateRate: rng.next() * 0.2,
      reorderRate: rng.next() * 0.2,
      gstMs,
      postGstMaxDelayMs: Math.min(maxDelayMs, 200),
      partitions,
      crashes,
    },
  };
}
