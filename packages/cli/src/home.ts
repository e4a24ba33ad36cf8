/** The home folder's ownership rule (BAD_HOME), kept apart so that the keyring can apply it too. */
import { mkdirSync, statSync } from 'node:fs';
import { UncError } from '@unc/core';

/**
 * Refuses a home folder that someone else could have changed: one owned by another user (root
 * aside, who can change anything anyway), or writable by its group or by everyone. Whoever can
 * write it can put their own config.json there (a node URL, a chain pin lifted), replace or rename
 * keys and key files, or plant links the next write follows; the keyring, `unc init`'s keys and the
 * miner's records would then be read from, and written to, a folder that is not the user's. A home
 * that does not exist yet passes: the commands create it 0700. Nothing to check on Windows, which
 * has neither uids nor these mode bits. The same check applies to any folder given as a home.
 */
export function checkHome(dir: string, what = 'home'): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isDirectory()) throw new UncError('BAD_HOME', `the ${what} ${dir} is not a directory`);
  if (st.uid !== uid && st.uid !== 0) {
    throw new UncError(
      'BAD_HOME',
      `the ${what} ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}): its keys and config could be someone else's; use a folder of your own (or chown it)`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new UncError(
      'BAD_HOME',
      `the ${what} ${dir} is writable by ${[st.mode & 0o020 ? 'its group' : '', st.mode & 0o002 ? 'everyone' : ''].filter(Boolean).join(' and ')} (mode ${(st.mode & 0o7777).toString(8)}): anyone who can write it can replace its keys and config; run chmod go-w ${dir}`,
    );
  }
}

/**
 * Creates `dir` (0700, its missing parents too) if it is not there, then holds it to checkHome.
 * The check a command made at its start passes a home that does not exist yet; whoever can write
 * its parent could create it (theirs, or writable by everyone) before the command does, and
 * mkdirSync, told `recursive`, takes a folder it finds without a word: the keys and config.json
 * would then be written into that folder. Checked again once it exists, nothing is written there.
 */
export function makeHome(dir: string, what = 'home'): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkHome(dir, what);
}
