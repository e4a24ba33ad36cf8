/** The home folder's ownership rule (BAD_HOME), kept apart so that the keyring can apply it too. */
import { lstatSync, mkdirSync, readlinkSync, realpathSync, type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UncError } from '@unc/core';

/**
 * Refuses a home folder that someone else could have changed: one owned by another user (root
 * aside, who can change anything anyway), or writable by its group or by everyone. Whoever can
 * write it can put their own config.json there (a node URL, a chain pin lifted), replace or rename
 * keys and key files, or plant links the next write follows; the keyring, `unc init`'s keys and the
 * miner's records would then be read from, and written to, a folder that is not the user's. A home
 * that does not exist yet passes: the commands create it 0700. Nothing to check on Windows, which
 * has neither uids nor these mode bits. The same check applies to any folder given as a home.
 *
 * Every folder above it is held to the same rule (checkParents), whether the home exists or not: a
 * home of the user's, 0700, in a folder someone else can write is theirs all the same, since they
 * can rename it away and put one of their own, with their config and keys, in its place.
 */
export function checkHome(dir: string, what = 'home'): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  let st: Stats | undefined;
  try {
    st = statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (st) {
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
        `the ${what} ${dir} is writable by ${writers(st.mode)} (mode ${(st.mode & 0o7777).toString(8)}): anyone who can write it can replace its keys and config; run chmod go-w ${dir}`,
      );
    }
  }
  checkParents(dir, what, uid);
}

/**
 * The rule OpenSSH's StrictModes holds the folders above a user's keys to: each must belong to this
 * user or to root, and be writable by no one else, except a folder of root's with the sticky bit
 * (/tmp), where only an entry's owner may rename or remove it. A folder above the home that its
 * group or everyone could write let them rename the home away and make their own under its name;
 * one that another user owns, they can make writable whenever they like. Folders not made yet are
 * skipped (the nearest one that is there is checked). Both ways to the home are walked: the
 * folders its path names (a link among them lies in the one above it, which could replace the
 * link) and the folders it really is in, once links are resolved (where a link leads); and every
 * link on the way, with the folder it lies in (below).
 */
function checkParents(dir: string, what: string, uid: number): void {
  const path = resolve(dir);
  const seen = new Set<string>();
  const walk = (from: string) => {
    for (let d = from; !seen.has(d); d = dirname(d)) {
      seen.add(d);
      checkParent(d, path, what, uid);
      if (dirname(d) === d) break;
    }
  };
  walk(dirname(path));
  // The deepest of the home and its folders that is there, links resolved: the home itself (then
  // its real folders are checked) or the nearest folder that exists (then it and those above it).
  for (let d = path; ; d = dirname(d)) {
    let real: string;
    try {
      real = realpathSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && dirname(d) !== d) continue;
      throw err;
    }
    walk(d === path ? dirname(real) : real);
    break;
  }
  // Every link on the way, as the system follows them, each link's target in turn and each link
  // once (links that lead to each other are walked once, not until the system would give up). A
  // link lies in a folder that may be on neither way above (a link to a link): that folder and
  // those above it are held to the rule too, since whoever can write it can replace the link. And
  // in a sticky folder (/tmp), which passes the rule, whoever owns an entry may remove it and make
  // another under its name: a link of someone else's there they can point elsewhere, at a home of
  // theirs, at any moment after the check, however well the folders it leads to are kept (a
  // folder of theirs there is refused as theirs already; a link's owner is seen only by lstat).
  const links = new Set<string>();
  const followLinks = (to: string) => {
    // From the top down, so that each name is looked up in the folder the system finds it in.
    const names: string[] = [];
    for (let d = to; dirname(d) !== d; d = dirname(d)) names.unshift(d);
    for (const d of names) {
      let lst: Stats;
      try {
        lst = lstatSync(d);
      } catch (err) {
        // Not there yet (nor anything below it), not a folder, links in a loop: making or reading
        // the home fails on it, with its own error.
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return;
        throw err;
      }
      if (!lst.isSymbolicLink() || links.has(d)) continue;
      links.add(d);
      const folder = realpathSync(dirname(d));
      walk(folder);
      if (lst.uid !== uid && lst.uid !== 0 && (statSync(folder).mode & 0o022) !== 0) {
        throw new UncError(
          'BAD_HOME',
          `the link ${d}, on the way to the ${what} ${path}, belongs to uid ${lst.uid}, not to this user (uid ${uid}) or root, and lies in ${folder}, which others can write: they can point it elsewhere, at a ${what} of theirs, whenever they like; use a path without it (where it leads, or a link of your own)`,
        );
      }
      // Where it leads, as the system reads it: relative to the real folder it lies in. The names
      // after it in this path are looked up there; the next one's lstat goes through it.
      followLinks(resolve(folder, readlinkSync(d)));
    }
  };
  followLinks(path);
}

function checkParent(dir: string, home: string, what: string, uid: number): void {
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  // A file where a folder should be: making or reading the home fails on it, with its own error.
  if (!st.isDirectory()) return;
  const mode = (st.mode & 0o7777).toString(8);
  if (st.uid !== uid && st.uid !== 0) {
    throw new UncError(
      'BAD_HOME',
      `the folder ${dir}, above the ${what} ${home}, belongs to uid ${st.uid}, not to this user (uid ${uid}) or root: they can rename the ${what} away and put their own, with its keys and config, in its place; keep the ${what} under folders only you or root own`,
    );
  }
  if ((st.mode & 0o022) !== 0 && !(st.uid === 0 && (st.mode & 0o1000) !== 0)) {
    throw new UncError(
      'BAD_HOME',
      `the folder ${dir}, above the ${what} ${home}, is writable by ${writers(st.mode)} (mode ${mode}) and is not a sticky folder of root's like /tmp: they can rename the ${what} away and put their own, with its keys and config, in its place; run chmod go-w ${dir}, or keep the ${what} elsewhere`,
    );
  }
}

function writers(mode: number): string {
  return [mode & 0o020 ? 'its group' : '', mode & 0o002 ? 'everyone' : ''].filter(Boolean).join(' and ');
}

/**
 * Creates `dir` (0700, its missing parents too) if it is not there, then holds it to checkHome.
 * The check a command made at its start passes a home that does not exist yet; whoever can write
 * its parent could create it (theirs, or writable by everyone) before the command does, and
 * mkdirSync, told `recursive`, takes a folder it finds without a word: the keys and config.json
 * would then be written into that folder. Checked again once it exists, nothing is written there.
 * Checked before it is made as well: a home is never made in a folder checkHome refuses.
 */
export function makeHome(dir: string, what = 'home'): void {
  checkHome(dir, what);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkHome(dir, what);
}
