// The parts of --help that are prose: exit codes for every command, examples for the main ones.
import type { Command } from 'commander';

export const EXIT_CODES = `
Exit codes:
  0  done (rollout watch: the rollout completed; node drain --wait: the drain completed)
  1  failed: "error: <what to do> [CODE]" on stderr; also a rollout that ended otherwise, a
     drain that failed or is blocked, drift found (audit drift)
  2  rollout plan: the preflight blocks the rollout

Output: -o table|wide|json|yaml on every read (--json is -o json). Colour only in log lines on
a terminal, and never with NO_COLOR set; progress bars only on a terminal.`;

const EXAMPLES: Record<string, string> = {
  nodes: `  drydock nodes
  drydock nodes --region us-east -o wide
  drydock nodes -o json | jq -r '.[] | select(.status == "down") | .hostname'`,
  'node drain': `  drydock node drain worker-3 --wait
  drydock node drain worker-3 --timeout 20m --force`,
  deploy: `  drydock deploy -f web.yaml                 # created, configured (replicas, …) or unchanged
  drydock deploy -f web.yaml -o json | jq -r .result
  drydock deployments -o yaml`,
  'delete deployment': `  drydock delete deployment web
  drydock delete deployment web --wait --timeout 120`,
  'delete node': `  drydock node drain worker-3 --wait && drydock delete node worker-3
  drydock delete node worker-3 -o json`,
  operator: `  drydock operator                                   # embedded database in ./.drydock
  DATABASE_URL=postgres://drydock@db/drydock drydock operator --listen 0.0.0.0:8080 --tokens tokens.yaml
  drydock operator --tls-cert operator.crt --tls-key operator.key`,
  agent: `  drydock agent --operator https://operator:8080 --ca-file ca.crt --region us-east
  drydock supervisor --data-dir /var/lib/drydock/agent -- agent --region us-east`,
  'rollout plan': `  drydock rollout plan -f upgrade.yaml
  drydock rollout plan -f upgrade.yaml --override volume-last-replica`,
  'rollout create': `  drydock rollout create -f upgrade.yaml
  drydock rollout watch upgrade-2-0-0`,
  'rollout watch': `  drydock rollout watch upgrade-2-0-0
  drydock rollout watch upgrade-2-0-0 --json | jq .status`,
  'artifacts publish': `  drydock artifacts publish --component web --version 2.0.0 --kind binary --file web.tar.gz --key keys/drydock-signing.key`,
};

function find(program: Command, path: string): Command | undefined {
  let current: Command | undefined = program;
  for (const name of path.split(' ')) current = current?.commands.find((c) => c.name() === name);
  return current;
}

/** Adds the exit codes to the root's help and examples to each main command's. */
export function addHelpTexts(program: Command): void {
  program.addHelpText('after', EXIT_CODES);
  for (const [path, text] of Object.entries(EXAMPLES)) find(program, path)?.addHelpText('after', `\nExamples:\n${text}\n${EXIT_CODES}`);
}
