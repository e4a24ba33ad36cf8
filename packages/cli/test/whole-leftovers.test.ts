/**
 * The temporary files of whole-file writes (writeFileWhole: `<name>.<12 hex>.tmp`) that a kill
 * between their creation and the rename left: a whole copy of a key file, miner.json or a node
 * home's config/node.json at a name nobody looks after. Removed where those files are loaded, by
 * the rules of removeWholeLeftovers: exactly that name, older than a minute, a link itself and
 * never its target, no folder.
 */
import assert from 'node:assert/strict';
import {
  existsSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { initHome, loadHome } from '../src/commands/init.js';
import { readMinerConfig } from '../src/commands/miner.js';
import { Keyring } from '../src/keyring.js';
import { tempHome } from './helpers.js';

const OLD = new Date(Date.now() - 10 * 60_000);

/** A file of `text` at `path` whose mtime is ten minutes ago: a leftover of a killed write. */
function stale(path: string, text = 'a whole copy\n'): void {
  writeFileSync(path, text);
  utimesSync(path, OLD, OLD);
}

/** A link at `path` to `target`, itself ten minutes old. */
function staleLink(target: string, path: string): void {
  symlinkSync(target, path);
  lutimesSync(path, OLD, OLD);
}

test("a killed key write's temporary copies are removed when the keyring is opened: only those, a link's target never", () => {
  const home = tempHome();
  const outside = tempHome();
  try {
    const keyring = new Keyring(home.dir);
    keyring.addTest('alice', new Uint8Array(32).fill(1), 'unc-test');
    const dir = keyring.dir;
    // A rewrite of alice's file (a rename) killed before its rename, and an add of a new key, bob,
    // killed the same way: no bob.json, only the copy of its seed.
    stale(join(dir, 'alice.json.0123456789ab.tmp'), '{"secret":"old copy"}\n');
    stale(join(dir, 'bob.json.abcdef012345.tmp'), '{"secret":"bob seed"}\n');
    // A link named like one, to a file elsewhere: the link goes, its target stays.
    const target = join(outside.dir, 'precious');
    writeFileSync(target, 'not ours\n');
    staleLink(target, join(dir, 'carol.json.cccccccccccc.tmp'));
    // Not leftovers of a key file: not `<key name>.json`, not exactly 12 lower-case hex, the wrong
    // end, a folder, and a fresh one (another command's write in progress).
    const kept = [
      'alice.json.0123456789AB.tmp',
      'alice.json.0123456789a.tmp',
      'alice.json.tmp',
      'alice.txt.0123456789ab.tmp',
      '.json.0123456789ab.tmp',
      '-bad.json.0123456789ab.tmp',
      'alice.json.0123456789ab.tmp.bak',
    ];
    for (const name of kept) stale(join(dir, name));
    mkdirSync(join(dir, 'dave.json.dddddddddddd.tmp'));
    utimesSync(join(dir, 'dave.json.dddddddddddd.tmp'), OLD, OLD);
    writeFileSync(join(dir, 'erin.json.eeeeeeeeeeee.tmp'), 'being written\n');

    const reopened = new Keyring(home.dir);
    assert.deepEqual(
      readdirSync(dir).sort(),
      ['alice.json', ...kept, 'dave.json.dddddddddddd.tmp', 'erin.json.eeeeeeeeeeee.tmp'].sort(),
    );
    assert.equal(readFileSync(target, 'utf8'), 'not ours\n');
    assert.deepEqual(
      reopened.list().map((k) => k.name),
      ['alice'],
    );
    assert.equal(reopened.info('alice').kind, 'test');
  } finally {
    home.cleanup();
    outside.cleanup();
  }
});

test("a killed write's temporary copies of miner.json are removed where `unc miner start` reads it", () => {
  const home = tempHome();
  const outside = tempHome();
  try {
    const path = join(home.dir, 'miner.json');
    writeFileSync(path, `${JSON.stringify({ from: 'owner', devChips: 2 })}\n`);
    stale(join(home.dir, 'miner.json.0123456789ab.tmp'), '{"from":"old"}\n');
    const target = join(outside.dir, 'precious');
    writeFileSync(target, 'not ours\n');
    staleLink(target, join(home.dir, 'miner.json.bbbbbbbbbbbb.tmp'));
    writeFileSync(join(home.dir, 'miner.json.eeeeeeeeeeee.tmp'), 'being written\n');
    stale(join(home.dir, 'other.json.0123456789ab.tmp'));

    assert.deepEqual(readMinerConfig(home.dir), { from: 'owner', devChips: 2 });
    assert.deepEqual(readdirSync(home.dir).sort(), [
      'miner.json',
      'miner.json.eeeeeeeeeeee.tmp',
      'other.json.0123456789ab.tmp',
    ]);
    assert.equal(readFileSync(target, 'utf8'), 'not ours\n');
    // A kill before the first rename left no miner.json at all: its copy goes all the same.
    const fresh = tempHome();
    try {
      stale(join(fresh.dir, 'miner.json.0123456789ab.tmp'));
      assert.deepEqual(readMinerConfig(fresh.dir), {});
      assert.deepEqual(readdirSync(fresh.dir), []);
    } finally {
      fresh.cleanup();
    }
  } finally {
    home.cleanup();
    outside.cleanup();
  }
});

test("a killed write's temporary copies of config/node.json are removed where the node home is loaded", async () => {
  const home = tempHome();
  const outside = tempHome();
  try {
    await initHome(home.dir, 'alice');
    const config = join(home.dir, 'config');
    stale(join(config, 'node.json.0123456789ab.tmp'), '{"moniker":"old"}\n');
    const target = join(outside.dir, 'precious');
    writeFileSync(target, 'not ours\n');
    staleLink(target, join(config, 'node.json.bbbbbbbbbbbb.tmp'));
    writeFileSync(join(config, 'node.json.eeeeeeeeeeee.tmp'), 'being written\n');
    // The key files are written once, never whole-file: nothing named after them is touched.
    stale(join(config, 'validator_key.json.0123456789ab.tmp'));

    assert.equal(loadHome(home.dir).moniker, 'alice');
    assert.deepEqual(readdirSync(config).sort(), [
      'node.json',
      'node.json.eeeeeeeeeeee.tmp',
      'node_key.json',
      'validator_key.json',
      'validator_key.json.0123456789ab.tmp',
    ]);
    assert.equal(readFileSync(target, 'utf8'), 'not ours\n');
    assert.equal(existsSync(join(config, 'node.json.bbbbbbbbbbbb.tmp')), false);
  } finally {
    home.cleanup();
    outside.cleanup();
  }
});
