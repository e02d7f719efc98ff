import { Command } from 'commander';
import { registerAgentCommand } from './commands/agent.js';
import { registerDemoCommands } from './commands/demo.js';
import { registerFleetCommands } from './commands/fleet.js';
import { registerMigrateCommand } from './commands/migrate.js';
import { registerOperatorCommand } from './commands/operator.js';

const program = new Command('drydock')
  .description('zero-downtime upgrades for fleets of machines')
  .version(DRYDOCK_VERSION, '-V, --version', 'print the drydock version')
  .option('--operator <url>', 'operator URL for API commands (env DRYDOCK_URL, default http://127.0.0.1:8080)')
  .option('--token <token>', 'bearer token for API commands (env DRYDOCK_TOKEN)')
  .showHelpAfterError('(run with --help for usage)')
  .configureHelp({ showGlobalOptions: true });

registerOperatorCommand(program);
registerAgentCommand(program);
registerMigrateCommand(program);
registerFleetCommands(program);
registerDemoCommands(program);

await program.parseAsync(process.argv);
