/** The `unc` command. Every failure ends in one line on stderr and a non-zero exit code. */
import { Command, CommanderError } from 'commander';
import { attestCommand } from './commands/attest.js';
import { chipCommand } from './commands/chip.js';
import { completionCommand } from './commands/completion.js';
import { configCommand } from './commands/config.js';
import { devCommand } from './commands/dev.js';
import { gatewayCommand } from './commands/gateway.js';
import { consensusKeyCommand, initCommand } from './commands/init.js';
import { jobCommand } from './commands/job.js';
import { keysCommand } from './commands/keys.js';
import { marketCommand } from './commands/market.js';
import { minerCommand } from './commands/miner.js';
import { queryCommand, statusCommand } from './commands/query.js';
import { startCommand } from './commands/start.js';
import { testnetCommand } from './commands/testnet.js';
import { txCommand } from './commands/tx.js';
import { vendorCommand } from './commands/vendor.js';
import { addGlobalOptions, ENV_VARS, examples, Interrupted } from './context.js';
import { CLI_VERSION } from './version.js';

const program = addGlobalOptions(
  new Command('unc')
    .description('UtilityNet: a blockchain for decentralised AI compute')
    .version(CLI_VERSION)
    .showHelpAfterError('(run with --help for usage)'),
).addHelpText(
  'after',
  [
    '',
    'The options above work anywhere on the line: unc --home X status = unc status --home X.',
    'Addresses may be given as key names, and chip, offer and lease ids by a unique prefix.',
    '',
    'Environment:',
    ...ENV_VARS.map(([name, meaning]) => `  ${name.padEnd(15)} ${meaning}`),
    examples([
      'unc dev                                   # a local dev chain with funded keys',
      'unc tx transfer --from dev0 --to dev1 --amount 12.5',
      'unc --node http://10.0.0.5:3030 status -o json',
      'unc config set node http://10.0.0.5:3030',
      'eval "$(unc completion bash)"',
    ]),
    'Docs: docs/cli.md',
  ].join('\n'),
);

program.addCommand(devCommand());
program.addCommand(initCommand());
program.addCommand(consensusKeyCommand());
program.addCommand(startCommand());
program.addCommand(testnetCommand());
program.addCommand(keysCommand());
program.addCommand(txCommand());
program.addCommand(queryCommand());
program.addCommand(statusCommand());
program.addCommand(chipCommand());
program.addCommand(minerCommand());
program.addCommand(jobCommand());
program.addCommand(vendorCommand());
program.addCommand(attestCommand());
program.addCommand(marketCommand());
program.addCommand(gatewayCommand());
program.addCommand(configCommand());
program.addCommand(completionCommand(program));

// Usage errors of every command end like the others (caught below), and every command's help lists
// the global options.
const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
for (const cmd of all(program)) cmd.exitOverride().configureHelp({ showGlobalOptions: true });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  // Ctrl-C at a prompt: the status a shell gives SIGINT, and no error line (the user chose it).
  if (err instanceof Interrupted) process.exit(130);
  const e = err as Error & { code?: unknown; reason?: string };
  const code = typeof e.code === 'string' ? e.code : e.reason;
  console.error(`error: ${e.message}${code && !e.message.includes(code) ? ` [${code}]` : ''}`);
  if (process.env.UNC_DEBUG) console.error(e.stack);
  process.exit(1);
}
