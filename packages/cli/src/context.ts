/** What every command shares: where its home is, which node it talks to, how it prints. */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { decodeAddress, UncError } from '@unc/core';
import { readSecretFile, removeWholeLeftovers } from '@unc/node';
import { normalizeNodeUrl, UncClient } from '@unc/sdk';
import { type Command, Option } from 'commander';
import { checkHome } from './home.js';
import { isKeyName, Keyring } from './keyring.js';

export { checkHome, makeHome } from './home.js';

export const DEFAULT_HOME = join(homedir(), '.unc', 'dev');
export const DEFAULT_NODE = 'http://127.0.0.1:3030';

/**
 * The environment variables the CLI and the node read, shown by `unc --help` and docs/cli.md. A
 * flag beats its variable, and the variable beats the home's config.json.
 */
export const ENV_VARS: readonly (readonly [name: string, meaning: string])[] = [
  ['UNC_HOME', `the home directory, like --home (default ${DEFAULT_HOME})`],
  ['UNC_NODE', "the node's RPC URL, like --node"],
  ['UNC_OUTPUT', 'text or json, like --output'],
  ['UNC_LOG_LEVEL', 'debug, info, warn or error: what a node or miner logs (default info)'],
  ['UNC_LOG_FORMAT', 'json: log JSON lines instead of text'],
  ['UNC_DEBUG', 'any value: print the stack trace of an error'],
  [
    'UNC_VERIFY_THREADS',
    'signature-check worker threads of a node (unc start, unc dev), like --verify-threads',
  ],
  [
    'UNC_JOB_ISOLATION',
    "auto, bwrap or none: the OS sandbox of a provider's job processes (unc miner start, unc dev), like --job-isolation",
  ],
  [
    'UNC_TESTNET_NODE_FLAGS',
    'node flags for each validator `unc testnet` starts, split on spaces (e.g. --cpu-prof)',
  ],
];

/** The "Examples:" block `--help` shows after a command's options. */
export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

export type OutputFormat = 'text' | 'json';

/** The options every command takes, wherever they stand on the line (they belong to `unc` itself). */
export interface GlobalOptions {
  home?: string;
  node?: string;
  output?: string;
  yes?: boolean;
}

/** Adds --home, --node, -o/--output and -y/--yes to the root command. */
export function addGlobalOptions(program: Command): Command {
  return program
    .option(
      '--home <dir>',
      `directory of the keyring and config.json (env UNC_HOME; default ${DEFAULT_HOME})`,
    )
    .option(
      '--node <url>',
      `node RPC URL (env UNC_NODE; default: \`unc config get node\`, which \`unc dev\` records, else ${DEFAULT_NODE})`,
    )
    .addOption(
      new Option(
        '-o, --output <format>',
        'output format (env UNC_OUTPUT; default: config, else text)',
      ).choices(['text', 'json']),
    )
    .option('-y, --yes', 'sign and send without asking for confirmation (needed without a terminal)');
}

export function outputFormat(text: string, source: string): OutputFormat {
  if (text !== 'text' && text !== 'json')
    throw new UncError('BAD_OUTPUT', `invalid output format "${text}" from ${source}: text or json`);
  return text;
}

export class Context {
  readonly home: string;
  readonly output: OutputFormat;
  /** -y: the confirmation policy (send.ts) does not ask. */
  readonly yes: boolean;
  private readonly nodeFlag: string | undefined;

  constructor(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env) {
    this.home = resolve(opts.home ?? (env.UNC_HOME || DEFAULT_HOME));
    checkHome(this.home);
    this.nodeFlag = opts.node ?? (env.UNC_NODE || undefined);
    const configured = readConfig(this.home).output;
    this.output = opts.output
      ? outputFormat(opts.output, '--output')
      : env.UNC_OUTPUT
        ? outputFormat(env.UNC_OUTPUT, 'UNC_OUTPUT')
        : typeof configured === 'string'
          ? outputFormat(configured, configPath(this.home))
          : 'text';
    this.yes = opts.yes === true;
  }

  /** --node, else UNC_NODE, else the home's config.json, else the default. */
  get nodeUrl(): string {
    if (this.nodeFlag) return normalizeNodeUrl(this.nodeFlag);
    const recorded = readConfig(this.home).node;
    if (typeof recorded === 'string' && recorded) return normalizeNodeUrl(recorded);
    return DEFAULT_NODE;
  }

  /** The home's config.json (`unc config get|set`). */
  config(): Record<string, unknown> {
    return readConfig(this.home);
  }

  client(): UncClient {
    return new UncClient(this.nodeUrl);
  }

  keyring(): Keyring {
    return new Keyring(this.home);
  }

  /**
   * Refuses `chainId` (a node's word) when the home pins another chain. With -y nobody reads the
   * confirmation, so a hostile node could name mainnet from the start and have a testnet command
   * signed for mainnet; a pinned home (`unc config set chainId`) signs for no other chain.
   */
  checkChainPin(chainId: string): void {
    const pinned = readConfig(this.home).chainId;
    // Any value but the chain's own id refuses (a hand-written 1 or true pins nothing that matches).
    if (pinned !== undefined && pinned !== chainId) {
      throw new UncError(
        'CHAIN_MISMATCH',
        `the node at ${this.nodeUrl} is on chain "${chainId}", but ${configPath(this.home)} pins chain ${JSON.stringify(pinned)}: nothing was signed (\`unc config unset chainId\` lifts the pin)`,
      );
    }
  }

  /**
   * A keyring key's seed for `chainId`: test keys only on their dev chain, a keystore after its
   * password (from `--password-file`, else a hidden prompt).
   */
  async unlockKey(name: string, chainId: string, opts: { passwordFile?: string }): Promise<Uint8Array> {
    this.checkChainPin(chainId);
    const keyring = this.keyring();
    const password = keyring.needsPassword(name)
      ? await readPassword(opts, `Password for "${name}": `)
      : undefined;
    return keyring.unlock(name, chainId, password);
  }

  /** An address given as `unc1…` or as the name of a key in the keyring. */
  address(text: string): string {
    return resolveAddress(text, this.keyring());
  }

  /** Prints `value` as JSON, or as text with `text` (defaults to JSON too). */
  print(value: unknown, text?: () => string): void {
    if (this.output === 'json' || !text) console.log(JSON.stringify(value, null, 2));
    else console.log(text());
  }
}

/**
 * `unc1…` as it is, or the address of the keyring key of that name. An address is tried first, so
 * a key cannot shadow one; a key name is never mistaken for an address (names have no checksum).
 */
export function resolveAddress(text: string, keyring: Keyring): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('unc1')) {
    decodeAddress(trimmed);
    return trimmed;
  }
  if (!isKeyName(trimmed) || !keyring.has(trimmed)) {
    throw new UncError(
      'BAD_ADDRESS',
      `"${text}" is neither an address (unc1…) nor the name of a key in ${keyring.dir} (see: unc keys list)`,
    );
  }
  return keyring.info(trimmed).address;
}

export function configPath(home: string): string {
  return join(home, 'config.json');
}

/** The home's config.json (written by `unc dev`, `unc start`, `unc miner start` and `unc config set`). */
export function readConfig(home: string): Record<string, unknown> {
  const path = configPath(home);
  // Every command reads it first: the temporary files of a write a kill interrupted go here.
  removeWholeLeftovers(path);
  if (!existsSync(path)) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UncError('BAD_CONFIG', `${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new UncError('BAD_CONFIG', `${path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

export function ctxOf(cmd: Command): Context {
  return new Context(cmd.optsWithGlobals() as GlobalOptions);
}

/** The shortest password a new key is encrypted under (`unc keys add`, `unc keys import`). */
export const MIN_PASSWORD_LENGTH = 8;

/**
 * Reads a password from --password-file (held to the owner-only rule of secret files,
 * readSecretFile: BAD_SECRET_FILE for one its group or others may read), or asks on the terminal without echo. `isNew` marks the
 * password a key is about to be encrypted under: asked twice at the prompt, and held to
 * MIN_PASSWORD_LENGTH from either source. The minimum applied to the prompt only, so a script's
 * `--password-file` holding "1" encrypted a key that any copy of its keystore (an export, a backup,
 * the home) gave up in a few guesses; and it applied at every unlock prompt instead, so a key
 * imported with its short password could be unlocked from a file but not at the terminal.
 */
export async function readPassword(
  opts: { passwordFile?: string },
  prompt: string,
  isNew = false,
): Promise<string> {
  let password: string;
  if (opts.passwordFile) {
    if (!existsSync(opts.passwordFile)) {
      throw new UncError('BAD_PASSWORD_FILE', `password file ${opts.passwordFile} does not exist`);
    }
    password = readSecretFile(opts.passwordFile, 'a password').replace(/\r?\n$/, '');
    if (password.length === 0)
      throw new UncError('BAD_PASSWORD_FILE', `password file ${opts.passwordFile} is empty`);
    checkNewPassword(password, isNew, ` (in ${opts.passwordFile})`);
    return password;
  }
  if (!process.stdin.isTTY) {
    throw new UncError('PASSWORD_REQUIRED', 'no terminal to ask for a password: pass --password-file <file>');
  }
  password = await askHidden(prompt);
  checkNewPassword(password, isNew, '');
  if (isNew && (await askHidden('Repeat the password: ')) !== password) {
    throw new UncError('PASSWORD_MISMATCH', 'the passwords do not match');
  }
  return password;
}

function checkNewPassword(password: string, isNew: boolean, where: string): void {
  // Counted in code points, as typed: a password of 8 emoji is not cut to 4.
  if (isNew && [...password].length < MIN_PASSWORD_LENGTH)
    throw new UncError(
      'WEAK_PASSWORD',
      `the password${where} must have at least ${MIN_PASSWORD_LENGTH} characters: a key's keystore is only as strong as its password once a copy of it is out`,
    );
}

/**
 * Thrown when the user presses Ctrl-C at a prompt: a terminal read raw turns ^C into a byte, not a
 * signal, so without this the prompt's promise never settled and the CLI ended as if nothing
 * happened. main.ts ends with 130, what a shell reports for SIGINT, so that scripts see the abort.
 */
export class Interrupted extends UncError {
  constructor() {
    super('INTERRUPTED', 'interrupted');
    this.name = 'Interrupted';
  }
}

/**
 * Asks one line on the terminal. Ctrl-C rejects with Interrupted; Ctrl-D (end of input) with
 * `onEnd`'s error, so that no caller goes on with an answer nobody gave.
 */
function ask(prompt: string, hidden: boolean, onEnd: () => Error): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const rl = createInterface({
      input: process.stdin,
      output: process.stderr,
      ...(hidden ? { terminal: true } : {}),
    });
    let settled = false;
    if (hidden) {
      process.stderr.write(prompt);
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
    }
    rl.on('SIGINT', () => {
      settled = true;
      rl.close();
      process.stderr.write('\n');
      reject(new Interrupted());
    });
    rl.on('close', () => {
      if (settled) return;
      settled = true;
      process.stderr.write('\n');
      reject(onEnd());
    });
    rl.question(hidden ? '' : prompt, (answer) => {
      settled = true;
      rl.close();
      if (hidden) process.stderr.write('\n');
      resolvePromise(answer);
    });
  });
}

function askHidden(prompt: string): Promise<string> {
  return ask(prompt, true, () => new UncError('PASSWORD_REQUIRED', 'no password given (end of input)'));
}

/**
 * Asks for a secret that is not a password (a mnemonic) without echo: shown as typed, the 24 words
 * that are the key stayed on the screen, in the terminal's scrollback and in any recording of the
 * session (`script`, tmux logs, a shared screen).
 */
export function askSecretLine(prompt: string): Promise<string> {
  return ask(prompt, true, () => new UncError('NO_ANSWER', 'no answer given (end of input)'));
}

export async function askLine(prompt: string): Promise<string> {
  return ask(prompt, false, () => new UncError('NO_ANSWER', 'no answer given (end of input)'));
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
