import { Command, Option } from 'commander';
import { registerAgentCommand } from './commands/agent.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerRolloutCommands } from './commands/rollout.js';
import { registerArtifactCommands, registerSetVersionCommand } from './commands/artifacts.js';
import { registerDemoCommands } from './commands/demo.js';
import { registerEdgeCommand } from './commands/edge.js';
import { registerFleetCommands } from './commands/fleet.js';
import { registerKeysCommands } from './commands/keys.js';
import { registerMigrateCommand } from './commands/migrate.js';
import { registerOperatorCommand } from './commands/operator.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerQuarantineCommands } from './commands/quarantine.js';
import { registerSupervisorCommand } from './commands/supervisor.js';
import { registerVmCommands } from './commands/vm.js';
import { trustCaFile } from '../tls.js';
import { exitWithError, OUTPUT_FORMATS, type OutputFormat, setOutputFormat } from './output.js';
import { addHelpTexts } from './help-texts.js';
import { registerCompletionCommand } from './commands/completion.js';
import { registerWebhookCommands } from './commands/webhooks.js';
import { registerDeleteCommands } from './commands/delete.js';

// `--version` is also an option of `artifacts publish`; commander reads the root's options
// anywhere on the line (so --operator works after a subcommand), so the root only claims
// --version as the very first argument.
if (process.argv[2] === '--version') {
  process.stdout.write(`${DRYDOCK_VERSION}\n`);
  process.exit(0);
}

const program = new Command('drydock')
  .description('zero-downtime upgrades for fleets of machines')
  .version(DRYDOCK_VERSION, '-V', 'print the drydock version (or --version as the first argument)')
  .option('--operator <url>', 'operator URL for API commands (env DRYDOCK_URL, default http://127.0.0.1:8080)')
  .option('--token <token>', 'bearer token for API commands (env DRYDOCK_TOKEN)')
  .option('--ca-file <file>', 'trust this CA (PEM) for https:// operator URLs, besides the system roots (env DRYDOCK_CA_FILE)')
  .addOption(new Option('-o, --output <format>', 'output of reads: table, wide (more columns), json or yaml (--json is -o json)').choices(OUTPUT_FORMATS))
  .showHelpAfterError('(run with --help for usage)')
  .configureHelp({ showGlobalOptions: true });

// Every command that talks to an operator (the CLI's, agent, edge, supervisor) trusts --ca-file.
program.hook('preAction', (_program, actionCommand) => {
  const { output } = actionCommand.optsWithGlobals<{ output?: OutputFormat }>();
  if (output) {
    setOutputFormat(output);
    // A command's own --json (and what it prints for scripts) follows -o json|yaml.
    if ((output === 'json' || output === 'yaml') && actionCommand.options.some((o) => o.long === '--json')) actionCommand.setOptionValue('json', true);
  }
  const caFile = actionCommand.optsWithGlobals<{ caFile?: string }>().caFile ?? process.env.DRYDOCK_CA_FILE;
  if (!caFile) return;
  try {
    trustCaFile(caFile);
  } catch (error) {
    exitWithError(error);
  }
});

registerOperatorCommand(program);
registerAgentCommand(program);
registerSupervisorCommand(program);
registerMigrateCommand(program);
registerFleetCommands(program);
registerKeysCommands(program);
registerArtifactCommands(program);
const nodeCommand = program.commands.find((c) => c.name() === 'node');
if (nodeCommand) registerSetVersionCommand(nodeCommand);
registerDeleteCommands(program);
registerRolloutCommands(program);
registerAuditCommands(program);
registerPolicyCommands(program);
registerQuarantineCommands(program);
registerEdgeCommand(program);
registerDemoCommands(program);
registerVmCommands(program);
registerCompletionCommand(program);
addHelpTexts(program);
registerWebhookCommands(program);

await program.parseAsync(process.argv);
