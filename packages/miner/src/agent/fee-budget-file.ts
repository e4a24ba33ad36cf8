/**
 * The urgent-fee budget's record (heartbeats.ts UrgentFeeBudget) in a small JSON file in the
 * miner's home, so that a restart does not hand every chip its whole budget again: an agent that
 * crash-loops, or that whoever can make it crash restarts at will, would otherwise pay the budget
 * once per start. It holds each chip's spending of the last hour, by the agent's own clock (when
 * and how much), and nothing the node said.
 *
 * Written whole to a temporary file (mode 0600) and renamed over the old one: a crash mid-write
 * leaves the previous record, never half of one. The record is by chain: another chain's record
 * is not this chain's spending, and is kept beside it (`others`) until it is older than the hour.
 * Dropped, a node that named another chain at one start (the chain id is its word where the home
 * pins none) had the record rewritten for that chain, and at the next start, on the real chain
 * again, every chip had its whole budget back.
 *
 * One agent per record (lockUrgentFeeFile): two agents on one home each wrote what they alone had
 * spent over the other's, so each chip had up to twice its budget, and the other chains' records
 * only one of them had read were lost.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UncError } from '@unc/core';
import { fsyncDirectory, removeWholeLeftovers, writeFileWhole } from '@unc/node';
import { takeLockFile } from '../lock-file.js';
import {
  UrgentFeeBudget,
  type UrgentFeeBudgetStore,
  type UrgentFeeRecord,
  type UrgentFeeState,
} from './heartbeats.js';

/** The file's name in the miner's home. */
export const URGENT_FEE_FILE = 'urgent-fees.json';

/**
 * Copies of unreadable records kept beside the record (`urgent-fees.json.corrupt-<ms>-<hex>`),
 * the newest: enough to see what went wrong, and a file that keeps turning unreadable cannot fill
 * the disk with them.
 */
export const MAX_UNREADABLE_COPIES = 3;

/** One chain's spending. */
interface Section {
  /** chip id (hex) → [time (ms, the agent's clock), spent (decimal base units)] of the last hour. */
  spent: Record<string, [number, string][]>;
  /** Every chip's whole budget counted spent at this time (ms): the record had been unreadable. */
  allSpentAt?: number;
}

interface FileShape extends Section {
  /** 2: by the agent's clock (1, by the chain's epochs, is read as unreadable: counted spent). */
  version: 2;
  chainId: string;
  /** Other chains' spending, by chain id. */
  others?: Record<string, Section>;
}

/** Spending not known (its record unreadable): every chip's whole budget spent at `now`. */
function allSpent(now: number): UrgentFeeState {
  return { records: [], allSpentAt: now };
}

/**
 * This chain's spending in `text` (null: its section unreadable) and the other chains', each
 * chain's section read on its own: another chain's section that cannot be read counts as that
 * chain's whole budget spent `now`, and no section unreadable costs another chain its record.
 * What could not be read is said in `unreadable`. Throws where the file as a whole is not a record
 * (then no chain's section can be told apart).
 */
function parseRecords(
  text: string,
  chainId: string,
  now: number,
): { state: UrgentFeeState | null; others: Map<string, UrgentFeeState>; unreadable: string[] } {
  const f = JSON.parse(text) as Partial<FileShape> | null;
  if (f === null || typeof f !== 'object' || f.version !== 2 || typeof f.chainId !== 'string')
    throw new Error('not a version 2 urgent-fee record');
  const unreadable: string[] = [];
  const sections = new Map<string, unknown>();
  if (f.others !== undefined) {
    if (typeof f.others === 'object' && f.others !== null && !Array.isArray(f.others))
      for (const [id, section] of Object.entries(f.others)) sections.set(id, section);
    else unreadable.push('a bad "others" object (other chains\' records)');
  }
  sections.set(f.chainId, { spent: f.spent, allSpentAt: f.allSpentAt });
  const others = new Map<string, UrgentFeeState>();
  let state: UrgentFeeState | null = { records: [] };
  for (const [id, section] of sections) {
    let read: UrgentFeeState | null;
    try {
      read = stateOf(section);
    } catch (err) {
      unreadable.push(`chain ${JSON.stringify(id)}: ${(err as Error).message}`);
      read = null;
    }
    if (id === chainId) state = read;
    else others.set(id, read ?? allSpent(now));
  }
  return { state, others, unreadable };
}

/** A time of the agent's clock as saved: whole milliseconds, not negative. */
function isTime(t: unknown): t is number {
  return typeof t === 'number' && Number.isSafeInteger(t) && t >= 0;
}

/** One chain's spending, or throws what is wrong with it. */
function stateOf(section: unknown): UrgentFeeState {
  if (typeof section !== 'object' || section === null) throw new Error('a bad chain section');
  const { spent, allSpentAt } = section as Partial<Section>;
  if (typeof spent !== 'object' || spent === null) throw new Error('no "spent" object');
  if (allSpentAt !== undefined && !isTime(allSpentAt))
    throw new Error(`bad allSpentAt ${JSON.stringify(allSpentAt)}`);
  const records: UrgentFeeRecord[] = [];
  for (const [chipId, list] of Object.entries(spent)) {
    if (!/^[0-9a-f]{64}$/.test(chipId)) throw new Error(`bad chip id ${JSON.stringify(chipId)}`);
    if (!Array.isArray(list)) throw new Error(`bad spending of chip ${chipId}`);
    for (const entry of list as unknown[]) {
      if (!Array.isArray(entry) || entry.length !== 2 || !isTime(entry[0]))
        throw new Error(`bad entry ${JSON.stringify(entry)} of chip ${chipId}`);
      const amount = entry[1];
      if (typeof amount !== 'string' || !/^(0|[1-9][0-9]{0,77})$/.test(amount))
        throw new Error(`bad amount ${JSON.stringify(amount)}`);
      records.push({ chipId, at: entry[0], spent: BigInt(amount) });
    }
  }
  return allSpentAt === undefined ? { records } : { records, allSpentAt };
}

/** A chain's spending as saved. */
function sectionOf(state: UrgentFeeState): Section {
  const spent: Section['spent'] = {};
  for (const r of state.records) (spent[r.chipId] ??= []).push([r.at, r.spent.toString()]);
  return state.allSpentAt !== undefined ? { spent, allSpentAt: state.allSpentAt } : { spent };
}

/**
 * Writes this chain's spending (and `others`, other chains' spending as kept: pruned, unreadable ones all spent) whole, atomically
 * and durably (writeFileWhole: a fresh exclusive temporary name, fsynced, renamed, the directory
 * fsynced), readable by the owner only.
 */
export function saveUrgentFeeRecords(
  path: string,
  chainId: string,
  state: UrgentFeeState,
  others: ReadonlyMap<string, UrgentFeeState> = new Map(),
): void {
  const kept = [...others].filter(([id]) => id !== chainId).map(([id, s]) => [id, sectionOf(s)] as const);
  const body: FileShape = {
    version: 2,
    chainId,
    ...sectionOf(state),
    // fromEntries: a chain named "__proto__" is a key like any other.
    ...(kept.length > 0 ? { others: Object.fromEntries(kept) } : {}),
  };
  // On disk before the paying send it is saved for: a power loss must not bring back the older record.
  writeFileWhole(path, `${JSON.stringify(body, null, 2)}\n`, 0o600);
}

/**
 * Writes `bytes`, a record that could not be read, to the fresh name `copy` beside it (flushed: the
 * rewritten record renamed over the original must not outlive its copy), then removes the oldest
 * such copies past MAX_UNREADABLE_COPIES.
 */
function keepUnreadableCopy(path: string, copy: string, bytes: Buffer): void {
  const fd = openSync(copy, 'wx', 0o600);
  try {
    try {
      writeFileSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // The copy's name as well: without it a power loss could keep the rewritten record (its
    // rename fsynced by writeFileWhole) and lose the copy's entry, the only place the rest was.
    fsyncDirectory(dirname(path));
  } catch (err) {
    // Ours (created above): removed, so that the next save's try can create it again.
    rmSync(copy, { force: true });
    throw err;
  }
  try {
    const prefix = `${basename(path)}.corrupt-`;
    const older = readdirSync(dirname(path))
      .filter((name) => name.startsWith(prefix) && name !== basename(copy))
      .map((name) => ({ name, at: Number.parseInt(name.slice(prefix.length), 10) || 0 }))
      .sort((a, b) => b.at - a.at);
    // The one just written stays whatever the clock said when the others were written.
    for (const { name } of older.slice(MAX_UNREADABLE_COPIES - 1))
      rmSync(join(dirname(path), name), { force: true });
  } catch {
    // A copy too many is tried again at the next unreadable record; it must not stop the save.
  }
}

/**
 * Other chains' spending still within the window (`windowMs`, the budget's) at `now`; a chain with
 * none left is dropped. A time past `now` (the clock was set back) is brought back to it, as the
 * budget's own are (settle): dated in the future, a record named a chain the file kept for as long
 * as the date was ahead, a node naming a new chain id at each start one section more each time.
 */
function pruneOthers(others: Map<string, UrgentFeeState>, now: number, windowMs: number): void {
  const counts = (at: number) => at > now - windowMs;
  for (const [id, state] of others) {
    const records = state.records
      .map((r) => (r.at > now ? { ...r, at: now } : r))
      .filter((r) => counts(r.at));
    const at = state.allSpentAt === undefined ? undefined : Math.min(state.allSpentAt, now);
    const allSpentAt = at !== undefined && counts(at) ? at : undefined;
    if (records.length === 0 && allSpentAt === undefined) others.delete(id);
    else others.set(id, allSpentAt === undefined ? { records } : { records, allSpentAt });
  }
}

/**
 * The budget of `perChipPerHour`, from the record at `path` and saving to it, by the clock `now`
 * (ms; default Date.now). No file: nothing spent yet. A chain's section that cannot be read (or a
 * file that cannot be read or parsed at all, for this chain): `warn` says so, and that chain's
 * every chip's whole budget counts as spent now, for the next hour (fail-closed, and from the
 * agent's own clock only: no word of the node can shorten it), never an error that would keep
 * the agent from answering its challenges. The other chains' sections that can be read are kept,
 * and the file as it was is copied aside (keepUnreadableCopy) before the first save rewrites it,
 * which is at once; a file there that could not be read at all is read again at each save, and
 * every save fails (nothing paid) until it can be copied aside. Other chains' spending older than the hour is dropped at each save. Once
 * `held` turns false (the agent gave up its lock, lockUrgentFeeFile), every save fails.
 */
export function openUrgentFeeBudget(
  path: string,
  chainId: string,
  perChipPerHour: bigint,
  warn: (message: string) => void,
  now: () => number = Date.now,
  held: () => boolean = () => true,
): UrgentFeeBudget {
  // Said once per run of failures, not at every pass that tries again.
  let failing = false;
  let others = new Map<string, UrgentFeeState>();
  let saved: UrgentFeeState | undefined;
  // The record as read, when some of it could not be: copied aside before it is first rewritten.
  let toCopy: Buffer | null = null;
  // The record is there but none of it could be read (EIO, EMFILE, EACCES): read again at each
  // save until it can be copied aside. Rewritten unread, the other chains' spending in it was lost.
  let unread = false;
  let saveNow = false;
  const copy = `${path}.corrupt-${now()}-${randomBytes(3).toString('hex')}`;
  // Under the lock (lockUrgentFeeFile): no other agent's write is in progress.
  removeWholeLeftovers(path);
  if (existsSync(path)) {
    let bytes: Buffer | null = null;
    let unreadable: string[];
    let read: UrgentFeeState | null = null;
    try {
      bytes = readFileSync(path);
      const parsed = parseRecords(bytes.toString('utf8'), chainId, now());
      ({ others, unreadable, state: read } = parsed);
    } catch (err) {
      unreadable = [(err as Error).message];
    }
    saved = read ?? allSpent(now());
    if (unreadable.length > 0) {
      saveNow = true;
      toCopy = bytes;
      unread = bytes === null;
      const whose =
        read === null
          ? "counting every chip's urgent-fee budget as spent for the next hour"
          : 'this chain\'s record is whole; another chain\'s that is not counts as all spent for the next hour (where no chain can be told apart, a bad "others" object, theirs are in the copy only)';
      warn(
        `urgent-fee record ${path} unreadable (${unreadable.join('; ')}): ${whose}; ${bytes ? `the record is written again, the unreadable one is kept as ${copy}` : `it is written again (and the fee paid) only once it can be read and kept as ${copy}`}`,
      );
    }
  }
  const store: UrgentFeeBudgetStore = {
    save: (state) => {
      try {
        // Given up (stop): a pass still on its way to a paying send would write this agent's view
        // over the record the next agent on this home has taken and read since.
        if (!held()) throw new Error('the record is no longer held by this agent');
        if (unread) {
          let bytes: Buffer | null = null;
          try {
            bytes = readFileSync(path);
          } catch (err) {
            // Gone since: nothing left in it to lose.
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
              throw new Error(`the record could not be read to be kept aside: ${(err as Error).message}`);
          }
          if (bytes !== null) {
            // Readable now: the other chains' sections it holds are kept as well as copied. This
            // chain's stays counted all spent (the budget as opened): the read that failed was
            // when the agent started, and what it had spent since then is not in the file.
            try {
              const read = parseRecords(bytes.toString('utf8'), chainId, now());
              for (const [id, state] of read.others) if (!others.has(id)) others.set(id, state);
            } catch {
              // Not a record: only the copy keeps it.
            }
          }
          toCopy = bytes;
          unread = false;
        }
        if (toCopy) {
          // Nothing is rewritten (and nothing paid) until the copy is made: data is never lost unseen.
          keepUnreadableCopy(path, copy, toCopy);
          toCopy = null;
        }
        pruneOthers(others, now(), budget.windowMs);
        saveUrgentFeeRecords(path, chainId, state, others);
        failing = false;
      } catch (err) {
        if (!failing)
          warn(
            `urgent-fee record ${path} not saved (${(err as Error).message}); no urgent fee is paid until it is`,
          );
        failing = true;
        throw err;
      }
    },
  };
  const budget = new UrgentFeeBudget(perChipPerHour, { store, now, ...(saved ? { saved } : {}) });
  // Saved at once (a failed save pays nothing either, and is tried again each pass).
  if (saveNow) budget.save();
  return budget;
}

function inUse(lock: string, pid: number): UncError {
  return new UncError(
    'MINER_RUNNING',
    `another miner agent (pid ${pid}) uses this home's urgent-fee record (${lock}): two would each write their own spending over the other's; stop it, or use another home (if no agent runs, remove ${lock})`,
  );
}

/**
 * Takes the urgent-fee record at `path` for this agent alone, until the returned release is called
 * (or the process ends), or throws MINER_RUNNING. The lock is `<path>.lock`, linked in whole with
 * this pid. Two agents on one home each read the record at their start and wrote their own spending
 * over the other's: a chip had up to twice its budget in the hour, and another chain's record only
 * one had read was lost. Refusing the second is simpler than merging under a lock, and sound where
 * merging is not: the two would also drive the same chips with the same owner key and nonces.
 *
 * A lock whose pid is gone (a crash, a kill) is stale and taken over, under `<path>.lock.break`
 * taken the same way, so that of two starts that find one stale lock only one takes it (a breaker
 * whose start died holding it is stale too, and cleared). A lock holds its writer's boot id and
 * start time where the system tells them, so that a pid handed to another process since (a reboot,
 * a container restarted) does not keep every start out. Any other
 * failure to take it (a home not writable) throws: the record could not be saved there either.
 */
export function lockUrgentFeeFile(path: string): () => void {
  const lock = `${resolve(path)}.lock`;
  return takeLockFile(lock, {
    held: (pid) => inUse(lock, pid),
    takingOver: (pid) =>
      new UncError(
        'MINER_RUNNING',
        `another miner agent (pid ${pid}) is taking over this home's stale ${lock}`,
      ),
    changing: () => new UncError('MINER_RUNNING', `${lock} kept changing while this agent tried to take it`),
  });
}
