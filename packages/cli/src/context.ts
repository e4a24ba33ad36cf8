/** What every command shares: where its home is, which node it talks to, how it prints. */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { UncError } from '@unc/core';
import { normalizeNodeUrl, UncClient } from '@unc/sdk';
import { type Command, Option } from 'commander';
import { Keyring } from './keyring.js';

export const DEFAULT_HOME = join(homedir(), '.unc', 'dev');
export const DEFAULT_NODE = 'http://127.0.0.1:3030';

export interface CommonOptions {
  home: string;
  node?: string;
  output: 'text' | 'json';
}

/** Adds --home, --node and --output to a command. */
export function withCommon(cmd: Command): Command {
  return cmd
    .option('--home <dir>', 'directory of the keyring and config', process.env.UNC_HOME ?? DEFAULT_HOME)
    .option(
      '--node <url>',
      `node RPC URL (default: the one \`unc dev\` recorded in the home, else ${DEFAULT_NODE})`,
    )
    .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'));
}

export class Context {
  readonly home: string;
  readonly output: 'text' | 'json';
  private readonly nodeFlag: string | undefined;

  constructor(opts: CommonOptions) {
    this.home = resolve(opts.home);
    this.output = opts.output;
    this.nodeFlag = opts.node;
  }

  get nodeUrl(): string {
    if (this.nodeFlag) return normalizeNodeUrl(this.nodeFlag);
    if (process.env.UNC_NODE) return normalizeNodeUrl(process.env.UNC_NODE);
    const config = join(this.home, 'config.json');
    if (existsSync(config)) {
      const recorded = (JSON.parse(readFileSync(config, 'utf8')) as { node?: string }).node;
      if (recorded) return normalizeNodeUrl(recorded);
    }
    return DEFAULT_NODE;
  }

  client(): UncClient {
    return new UncClient(this.nodeUrl);
  }

  keyring(): Keyring {
    return new Keyring(this.home);
  }

  /**
   * A keyring key's seed for `chainId`: test keys only on their dev chain, a keystore after its
   * password (from `--password-file`, else a hidden prompt).
   */
  async unlockKey(name: string, chainId: string, opts: { passwordFile?: string }): Promise<Uint8Array> {
    const keyring = this.keyring();
    const password = keyring.needsPassword(name)
      ? await readPassword(opts, `Password for "${name}": `)
      : undefined;
    return keyring.unlock(name, chainId, password);
  }

  /** Prints `value` as JSON, or as text with `text` (defaults to JSON too). */
  print(value: unknown, text?: () => string): void {
    if (this.output === 'json' || !text) console.log(JSON.stringify(value, null, 2));
    else console.log(text());
  }
}

export function ctxOf(cmd: Command): Context {
  return new Context(cmd.optsWithGlobals() as CommonOptions);
}

/** Reads a password from --password-file, or asks on the terminal without echo. */
export async function readPassword(
  opts: { passwordFile?: string },
  prompt: string,
  confirm = false,
): Promise<string> {
  if (opts.passwordFile) {
    if (!existsSync(opts.passwordFile)) {
      throw new UncError('BAD_PASSWORD_FILE', `password file ${opts.passwordFile} does not exist`);
    }
    const text = readFileSync(opts.passwordFile, 'utf8').replace(/\r?\n$/, '');
    if (text.length === 0)
      throw new UncError('BAD_PASSWORD_FILE', `password file ${opts.passwordFile} is empty`);
    return text;
  }
  if (!process.stdin.isTTY) {
    throw new UncError('PASSWORD_REQUIRED', 'no terminal to ask for a password: pass --password-file <file>');
  }
  const first = await askHidden(prompt);
  if (first.length < 8) throw new UncError('WEAK_PASSWORD', 'the password must have at least 8 characters');
  if (confirm && (await askHidden('Repeat the password: ')) !== first) {
    throw new UncError('PASSWORD_MISMATCH', 'the passwords do not match');
  }
  return first;
}

function askHidden(prompt: string): Promise<string> {
  return new Promise((resolvePromise) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const rlAny = rl as unknown as { _writeToOutput: (s: string) => void };
    process.stderr.write(prompt);
    rlAny._writeToOutput = () => {};
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolvePromise(answer);
    });
  });
}

export async function askLine(prompt: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  return new Promise((resolvePromise) =>
    rl.question(prompt, (answer) => {
      rl.close();
      resolvePromise(answer);
    }),
  );
}

/** A TCP port given as `--<name>`; 0 asks the system for a free one. */
export function portOption(text: string, name: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535)
    throw new UncError('BAD_PORT', `invalid --${name} "${text}": 0…65535`);
  return n;
}

/** A whole number in min…max given as `--<name>`. */
export function countOption(text: string, name: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) {
    throw new UncError('BAD_ARGUMENT', `invalid --${name} "${text}": ${min}…${max}`);
  }
  return n;
}
