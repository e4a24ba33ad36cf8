/** The `unc` command. Every failure ends in one line on stderr and a non-zero exit code. */
import { Command, CommanderError } from 'commander';
import { attestCommand } from './commands/attest.js';
import { chipCommand } from './commands/chip.js';
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

const program = new Command('unc')
  .description('UtilityNet: a blockchain for decentralised AI compute')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

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

for (const cmd of [program, ...program.commands, ...program.commands.flatMap((c) => c.commands)])
  cmd.exitOverride();

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
  const e = err as Error & { code?: unknown; reason?: string };
  const code = typeof e.code === 'string' ? e.code : e.reason;
  console.error(`error: ${e.message}${code && !e.message.includes(code) ? ` [${code}]` : ''}`);
  if (process.env.UNC_DEBUG) console.error(e.stack);
  process.exit(1);
}
