/**
 * The urgent-fee budget's record (heartbeats.ts UrgentFeeBudget) in a small JSON file in the
 * miner's home, so that a restart does not hand every chip its whole budget again: an agent that
 * crash-loops, or that whoever can make it crash restarts at will, would otherwise pay the budget
 * once per start.
 *
 * Written whole to a temporary file (mode 0600) and renamed over the old one: a crash mid-write
 * leaves the previous record, never half of one. The record is of one chain (a dev chain started
 * again reuses its chip ids at epoch 0, where a record of epoch 500 would prune every new charge at
 * once): a record of another chain is not this chain's spending and is started afresh.
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
  spent: Record<string, Record<string, string>>;
}

/** The records in `text`, or throws what is wrong with it. */
function parseRecords(text: string, chainId: string): UrgentFeeRecord[] {
  const f = JSON.parse(text) as Partial<FileShape> | null;
  if (f === null || typeof f !== 'object' || f.version !== 1 || typeof f.chainId !== 'string')
    throw new Error('not a version 1 urgent-fee record');
  if (f.chainId !== chainId) return [];
  if (typeof f.spent !== 'object' || f.spent === null) throw new Error('no "spent" object');
  const records: UrgentFeeRecord[] = [];
  for (const [chipId, epochs] of Object.entries(f.spent)) {
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
 * Writes the records whole, atomically (temp + rename), readable by the owner only. The temporary
 * name is fresh and created exclusively ('wx'), and flushed before the rename: a name from the pid was known in advance, and a
 * link planted there was written through (the file it pointed to truncated), or a file left there
 * kept its own mode.
 */
export function saveUrgentFeeRecords(
  path: string,
  chainId: string,
  records: readonly UrgentFeeRecord[],
): void {
  const spent: FileShape['spent'] = {};
  for (const r of records) (spent[r.chipId] ??= {})[String(r.epoch)] = r.spent.toString();
  const body: FileShape = { version: 1, chainId, spent };
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
  const store: UrgentFeeBudgetStore = {
    save: (records) => {
      try {
        saveUrgentFeeRecords(path, chainId, records);
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
    return new UrgentFeeBudget(perChipPerEpoch, store, parseRecords(readFileSync(path, 'utf8'), chainId));
  } catch (err) {
    warn(
      `urgent-fee record ${path} unreadable (${(err as Error).message}): counting every chip's urgent-fee budget as spent for the current epoch; it is rewritten once the epoch is known`,
    );
    const budget = new UrgentFeeBudget(perChipPerEpoch, store);
    budget.markLost();
    return budget;
  }
}
