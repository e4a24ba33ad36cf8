/** `unc config get|set|unset`: the settings kept in the home's config.json. */
import { UncError } from '@unc/core';
import { writeFileWhole } from '@unc/node';
import { normalizeNodeUrl } from '@unc/sdk';
import { Command } from 'commander';
import { configPath, ctxOf, examples, makeHome, outputFormat, readConfig } from '../context.js';

/** What a user may set, and how each value is checked (a bad value changes nothing). */
export const SETTINGS: Record<string, { meaning: string; check: (value: string) => string }> = {
  node: {
    meaning: 'the node RPC URL commands talk to (`unc dev` and `unc start` record theirs)',
    check: normalizeNodeUrl,
  },
  output: { meaning: 'text or json', check: (v) => outputFormat(v, 'unc config set') },
  explorer: {
    meaning: "the explorer whose pages follow each transaction (default: the node's own /explorer/)",
    check: (v) => `${normalizeNodeUrl(v)}/`,
  },
  chainId: {
    meaning: 'the only chain this home signs for: a key is unlocked for no other, whatever the node says',
    check: (v) => {
      // The genesis rule for a chain id, so a pin that no chain can match is refused here.
      if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(v))
        throw new UncError(
          'BAD_SETTING',
          `chainId must be 1-63 lowercase letters, digits or dashes, not "${v}"`,
        );
      return v;
    },
  },
};

function settingName(key: string): string {
  // hasOwn, not `in`: "toString", "constructor" or "__proto__" are in every object's prototype.
  if (!Object.hasOwn(SETTINGS, key))
    throw new UncError('BAD_SETTING', `unknown setting "${key}": one of ${Object.keys(SETTINGS).join(', ')}`);
  return key;
}

/** Writes config.json with `key` set (or removed), keeping what the node and miner recorded there. */
export function writeSetting(home: string, key: string, value: string | undefined): Record<string, unknown> {
  const config = readConfig(home);
  if (value === undefined) delete config[key];
  else config[key] = value;
  makeHome(home);
  writeFileWhole(configPath(home), `${JSON.stringify(config, null, 2)}\n`, 0o644);
  return config;
}

export function configCommand(): Command {
  const config = new Command('config')
    .description(`settings kept in <home>/config.json: ${Object.keys(SETTINGS).join(', ')}`)
    .addHelpText(
      'after',
      `\nSettings:\n${Object.entries(SETTINGS)
        .map(([k, s]) => `  ${k.padEnd(9)} ${s.meaning}`)
        .join(
          '\n',
        )}\n${examples(['unc config set node http://10.0.0.5:3030', 'unc config get node', 'unc config set output json', 'unc config set chainId unc-mainnet-1', 'unc config get'])}`,
    );

  config
    .command('get [key]')
    .description('print a setting (or all of config.json)')
    .action((key: string | undefined, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const all = readConfig(ctx.home);
      if (key === undefined) {
        ctx.print(all, () => JSON.stringify(all, null, 2));
        return;
      }
      const value = Object.hasOwn(all, key) ? all[key] : undefined;
      if (value === undefined)
        throw new UncError('NOT_SET', `"${key}" is not set in ${configPath(ctx.home)}`);
      ctx.print({ [key]: value }, () => (typeof value === 'string' ? value : JSON.stringify(value, null, 2)));
    });

  config
    .command('set <key> <value>')
    .description('set a setting')
    .action((key: string, value: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const checked = SETTINGS[settingName(key)]!.check(value);
      writeSetting(ctx.home, key, checked);
      ctx.print({ [key]: checked }, () => `${key} = ${checked} (in ${configPath(ctx.home)})`);
    });

  config
    .command('unset <key>')
    .description('remove a setting (the default applies again)')
    .action((key: string, _opts: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      writeSetting(ctx.home, settingName(key), undefined);
      ctx.print({ [key]: null }, () => `${key} removed from ${configPath(ctx.home)}`);
    });

  return config;
}
