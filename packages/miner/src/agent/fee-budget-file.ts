/**
 * The urgent-fee budget's record (heartbeats.ts UrgentFeeBudget) in a small JSON file in the
 * miner's home, so that a restart does not hand every chip its whole budget again: an agent that
 * crash-loops, or that whoever can make it crash restarts at will, would otherwise pay the budget
 * once per start.
 *
 * Written whole to a temporary file (mode 0600) and renamed over the old one: a crash mid-write
 * leaves the previous record, never half of one. The record is by chain (a dev chain started again
 * reuses its chip ids at epoch 0, where a record of epoch 500 would prune every new charge at
 * once): another chain's record is not this chain's spending, and is kept beside it untouched
 * (`others`). Dropped, a node that named another chain at one start (the chain id is its word
 * where the home pins none) had the record rewritten for that chain, and at the next start, on
 * the real chain again, every chip had its whole budget back.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { UrgentFeeBudget, type UrgentFeeBudgetStore, type UrgentFeeRecord } from './heartbeats.js';

/** The file's name in the miner's home. */
export const URGENT_FEE_FILE = 'urgent-fees.json';

interface FileShape {
  version: 1;
  chainId: string;
  /** chip id (hex) → epoch → spent (decimal base units). */
  spent: Spent;
  /** Other chains' spending, by chain id, kept as read. */
  others?: Record<string, Spent>;
}

type Spent = Record<string, Record<string, string>>;

/** This chain's records in `text` and the other chains' spending, or throws what is wrong with it. */
function parseRecords(
  text: string,
  chainId: string,
): { records: UrgentFeeRecord[]; others: Map<string, Spent> } {
  const f = JSON.parse(text) as Partial<FileShape> | null;
  if (f === null || typeof f !== 'object' || f.version !== 1 || typeof f.chainId !== 'string')
    throw new Error('not a version 1 urgent-fee record');
  if (f.others !== undefined && (typeof f.others !== 'object' || f.others === null))
    throw new Error('a bad "others" object');
  const sections = new Map<string, unknown>(Object.entries(f.others ?? {}));
  sections.set(f.chainId, f.spent);
  const others = new Map<string, Spent>();
  let records: UrgentFeeRecord[] = [];
  for (const [id, spent] of sections) {
    const read = recordsOf(spent);
    if (id === chainId) records = read;
    else others.set(id, spent as Spent);
  }
  return { records, others };
}

/** The records of one chain's spending, or throws what is wrong with it. */
function recordsOf(spent: unknown): UrgentFeeRecord[] {
  if (typeof spent !== 'object' || spent === null) throw new Error('no "spent" object');
  const records: UrgentFeeRecord[] = [];
  for (const [chipId, epochs] of Object.entries(spent)) {
    if (!/^[0-9a-f]{64}$/.test(chipId)) throw new Error(`bad chip id ${JSON.stringify(chipId)}`);
    if (typeof epochs !== 'object' || epochs === null) throw new Error(`bad epochs of chip ${chipId}`);
    for (const [epoch, spent] of Object.entries(epochs)) {
      if (!/^(0|[1-9][0-9]{0,14})$/.test(epoch)) throw new Error(`bad epoch ${JSON.stringify(epoch)}`);
      if (typeof spent !== 'string' || !/^(0|[1-9][0-9]{0,77})$/.test(spent))
        throw new Error(`bad amount ${JSON.stringify(spent)}`);
      records.push({ chipId, epoch: Number(epoch), spent: BigInt(spent) });
    }
  }
  return records;
}

/**
 * Writes the records (and `others`, other chains' spending as read) whole, atomically (temp +
 * rename), readable by the owner only. The temporary name is fresh and created exclusively
 * ('wx'), and flushed before the rename: a name from the pid was known in advance, and a link
 * planted there was written through (the file it pointed to truncated).
 */
export function saveUrgentFeeRecords(
  path: string,
  chainId: string,
  records: readonly UrgentFeeRecord[],
  others: ReadonlyMap<string, Spent> = new Map(),
): void {
  const spent: Spent = {};
  for (const r of records) (spent[r.chipId] ??= {})[String(r.epoch)] = r.spent.toString();
  const kept = [...others].filter(([id]) => id !== chainId);
  const body: FileShape = {
    version: 1,
    chainId,
    spent,
    // fromEntries: a chain named "__proto__" is a key like any other.
    ...(kept.length > 0 ? { others: Object.fromEntries(kept) } : {}),
  };
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  // Created here or thrown before anything is there to remove (a name taken is not ours to delete).
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      writeFileSync(fd, `${JSON.stringify(body, null, 2)}\n`);
      // On disk before the paying send it is saved for: a power loss must not bring back the older record.
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * The budget of `perChipPerEpoch`, from the record at `path` and saving to it. No file: nothing
 * spent yet. A file that cannot be read or parsed: `warn` says so, and the budget counts as spent
 * for the chain's current epoch (the agent tells it which: `exhaust`), never an error that would
 * keep the agent from answering its challenges.
 */
export function openUrgentFeeBudget(
  path: string,
  chainId: string,
  perChipPerEpoch: bigint,
  warn: (message: string) => void,
): UrgentFeeBudget {
  // Said once per run of failures, not at every pass that tries again.
  let failing = false;
  // Other chains' spending, written back as read.
  let others = new Map<string, Spent>();
  const store: UrgentFeeBudgetStore = {
    save: (records) => {
      try {
        saveUrgentFeeRecords(path, chainId, records, others);
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
  if (!existsSync(path)) return new UrgentFeeBudget(perChipPerEpoch, store);
  try {
    const read = parseRecords(readFileSync(path, 'utf8'), chainId);
    others = read.others;
    return new UrgentFeeBudget(perChipPerEpoch, store, read.records);
  } catch (err) {
    warn(
      `urgent-fee record ${path} unreadable (${(err as Error).message}): counting every chip's urgent-fee budget as spent for the current epoch; it is rewritten once the epoch is known`,
    );
    const budget = new UrgentFeeBudget(perChipPerEpoch, store);
    budget.markLost();
    return budget;
  }
}
