/**
 * Ctrl-C and Ctrl-D at a password prompt, typed on a real terminal: the prompt reads the terminal
 * raw, so ^C arrives as a byte, not as a signal, and the CLI itself must end the way a shell
 * expects (130) without writing the key. script(1) gives the CLI its pseudo-terminal.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempHome, UNC } from './helpers.js';

const hasScript = spawnSync('script', ['--version']).status === 0;

interface Session {
  /** Resolves once the terminal has shown `text`. */
  waitFor: (text: string) => Promise<void>;
  type: (bytes: string) => void;
  exited: Promise<number | null>;
  output: () => string;
}

function onTerminal(args: string[]): Session {
  const command = [process.execPath, UNC, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  // -e: script ends with the CLI's own exit status.
  const proc = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  const onData = (d: Buffer) => {
    out += d;
    for (const w of waiters.splice(0)) {
      if (out.includes(w.text)) w.resolve();
      else waiters.push(w);
    }
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  // A CLI that hung at the prompt would hold the test forever: it is killed by PID, and the
  // assertions on its status fail.
  const guard = setTimeout(() => proc.kill('SIGKILL'), 120_000);
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      clearTimeout(guard);
      for (const w of waiters.splice(0)) w.resolve();
      resolve(code);
    }),
  );
  return {
    waitFor: (text) =>
      new Promise((resolve) => {
        if (out.includes(text) || proc.exitCode !== null) resolve();
        else waiters.push({ text, resolve });
      }),
    type: (bytes) => proc.stdin.write(bytes),
    exited,
    output: () => out,
  };
}

function keyFiles(home: string): string[] {
  const dir = join(home, 'keyring');
  return existsSync(dir) ? readdirSync(dir) : [];
}

test('Ctrl-C at the password prompt of `unc keys add` exits 130 and writes no key', {
  skip: !hasScript,
}, async () => {
  const home = tempHome();
  try {
    const s = onTerminal(['keys', 'add', 'alice', '--home', home.dir]);
    await s.waitFor('Password for the new key: ');
    s.type('\x03');
    assert.equal(await s.exited, 130, s.output());
    assert.deepEqual(keyFiles(home.dir), []);
  } finally {
    home.cleanup();
  }
});

test('Ctrl-C at the repeat prompt exits 130 and writes no key', { skip: !hasScript }, async () => {
  const home = tempHome();
  try {
    const s = onTerminal(['keys', 'add', 'alice', '--home', home.dir]);
    await s.waitFor('Password for the new key: ');
    s.type('correct horse battery\r');
    await s.waitFor('Repeat the password: ');
    s.type('\x03');
    assert.equal(await s.exited, 130, s.output());
    assert.deepEqual(keyFiles(home.dir), []);
  } finally {
    home.cleanup();
  }
});

test('Ctrl-D at the password prompt is a clear error, not a silent end', { skip: !hasScript }, async () => {
  const home = tempHome();
  try {
    const s = onTerminal(['keys', 'add', 'alice', '--home', home.dir]);
    await s.waitFor('Password for the new key: ');
    s.type('\x04');
    assert.equal(await s.exited, 1, s.output());
    assert.match(s.output(), /no password given/);
    assert.deepEqual(keyFiles(home.dir), []);
  } finally {
    home.cleanup();
  }
});

test('Ctrl-C at the mnemonic prompt of `unc keys import` exits 130 and writes no key', {
  skip: !hasScript,
}, async () => {
  const home = tempHome();
  try {
    // A hidden prompt (askSecretLine), read raw: ^C is a byte there as well.
    const s = onTerminal(['keys', 'import', 'alice', '--home', home.dir]);
    await s.waitFor('Mnemonic');
    s.type('\x03');
    assert.equal(await s.exited, 130, s.output());
    assert.deepEqual(keyFiles(home.dir), []);
  } finally {
    home.cleanup();
  }
});

test('attack: the mnemonic typed at `unc keys import` is not echoed to the terminal', {
  skip: !hasScript,
}, async () => {
  const home = tempHome();
  try {
    const s = onTerminal(['keys', 'import', 'alice', '--home', home.dir]);
    await s.waitFor('Mnemonic');
    // Not a valid mnemonic: the command ends at BAD_MNEMONIC, which names no word either.
    s.type('zebra quartz sentinel\r');
    assert.equal(await s.exited, 1, s.output());
    assert.match(s.output(), /BAD_MNEMONIC|invalid mnemonic/);
    assert.doesNotMatch(s.output(), /zebra|quartz|sentinel/);
    assert.deepEqual(keyFiles(home.dir), []);
  } finally {
    home.cleanup();
  }
});
