/**
 * The urgent-fee budget's record (heartbeats.ts UrgentFeeBudget) in a small JSON file in the
 * miner's home, so that a restart does not hand every chip its whole budget again: an agent that
 * crash-loops, or that whoever can make it crash restarts at will, would otherwise pay the budget
 * once per start. It holds each chip's spending of the last hour, by the agent's own clock (when
 * and how much), and nothing the node said.
 *
 * Written whole to a temporary file (mode 0600) and renamed over the old one: a crash mid-write
 * leaves the previous record, never half of one. The record is by chain: another chain's record
 * is not this chain's spending, and is kept beside it untouched (`others`). Dropped, a node that
 * named another chain at one start (the chain id is its word where the home pins none) had the
 * record rewritten for that chain, and at the next start, on the real chain again, every chip had
 * its whole budget back.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileWhole } from '@unc/node';
import {
  UrgentFeeBudget,
  type UrgentFeeBudgetStore,
  type UrgentFeeRecord,
  type UrgentFeeState,
} from './heartbeats.js';

/** The file's name in the miner's home. */
export const URGENT_FEE_FILE = 'urgent-fees.json';

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
  /** Other chains' spending, by chain id, kept as read. */
  others?: Record<string, Section>;
}

/** This chain's spending in `text` and the other chains' sections, or throws what is wrong with it. */
function parseRecords(
  text: string,
  chainId: string,
): { state: UrgentFeeState; others: Map<string, Section> } {
  const f = JSON.parse(text) as Partial<FileShape> | null;
  if (f === null || typeof f !== 'object' || f.version !== 2 || typeof f.chainId !== 'string')
    throw new Error('not a version 2 urgent-fee record');
  if (f.others !== undefined && (typeof f.others !== 'object' || f.others === null))
    throw new Error('a bad "others" object');
  const sections = new Map<string, unknown>(Object.entries(f.others ?? {}));
  sections.set(f.chainId, { spent: f.spent, allSpentAt: f.allSpentAt });
  const others = new Map<string, Section>();
  let state: UrgentFeeState = { records: [] };
  for (const [id, section] of sections) {
    const read = stateOf(section);
    if (id === chainId) state = read;
    else others.set(id, section as Section);
  }
  return { state, others };
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

/**
 * Writes this chain's spending (and `others`, other chains' spending as read) whole, atomically
 * and durably (writeFileWhole: a fresh exclusive temporary name, fsynced, renamed, the directory
 * fsynced), readable by the owner only.
 */
export function saveUrgentFeeRecords(
  path: string,
  chainId: string,
  state: UrgentFeeState,
  others: ReadonlyMap<string, Section> = new Map(),
): void {
  const spent: Section['spent'] = {};
  for (const r of state.records) (spent[r.chipId] ??= []).push([r.at, r.spent.toString()]);
  const kept = [...others].filter(([id]) => id !== chainId);
  const body: FileShape = {
    version: 2,
    chainId,
    spent,
    ...(state.allSpentAt !== undefined ? { allSpentAt: state.allSpentAt } : {}),
    // fromEntries: a chain named "__proto__" is a key like any other.
    ...(kept.length > 0 ? { others: Object.fromEntries(kept) } : {}),
  };
  // On disk before the paying send it is saved for: a power loss must not bring back the older record.
  writeFileWhole(path, `${JSON.stringify(body, null, 2)}\n`, 0o600);
}

/**
 * The budget of `perChipPerHour`, from the record at `path` and saving to it, by the clock `now`
 * (ms; default Date.now). No file: nothing spent yet. A file that cannot be read or parsed: `warn`
 * says so, and every chip's whole budget counts as spent now, for the next hour, and is saved so
 * (fail-closed, and from the agent's own clock only: no word of the node can shorten it), never an
 * error that would keep the agent from answering its challenges.
 */
export function openUrgentFeeBudget(
  path: string,
  chainId: string,
  perChipPerHour: bigint,
  warn: (message: string) => void,
  now: () => number = Date.now,
): UrgentFeeBudget {
  // Said once per run of failures, not at every pass that tries again.
  let failing = false;
  // Other chains' spending, written back as read.
  let others = new Map<string, Section>();
  const store: UrgentFeeBudgetStore = {
    save: (state) => {
      try {
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
  if (!existsSync(path)) return new UrgentFeeBudget(perChipPerHour, { store, now });
  try {
    const read = parseRecords(readFileSync(path, 'utf8'), chainId);
    others = read.others;
    return new UrgentFeeBudget(perChipPerHour, { store, now, saved: read.state });
  } catch (err) {
    warn(
      `urgent-fee record ${path} unreadable (${(err as Error).message}): counting every chip's urgent-fee budget as spent for the next hour; the record is written again`,
    );
    const budget = new UrgentFeeBudget(perChipPerHour, { store, now });
    // Saved at once (a failed save pays nothing either, and is tried again each pass).
    budget.exhaust();
    return budget;
  }
}
