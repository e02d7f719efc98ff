// A launcher like `drydock demo`, for the test that kills it -9: starts an operator and one agent
// with DRYDOCK_PARENT_PID pointing at itself, prints their PIDs as one JSON line, then waits.
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { join } from 'node:path';

const [bundle, dir, port, ...agentArgs] = process.argv.slice(2);
const env = { ...process.env, DRYDOCK_PARENT_PID: String(process.pid), DRYDOCK_LOG_FORMAT: 'json' };
const start = (name, args) => {
  const log = openSync(join(dir, `${name}.log`), 'a');
  return spawn(process.execPath, [bundle, ...args], { stdio: ['ignore', log, log], env }).pid;
};
const operator = start('operator', ['operator', '--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'operator')]);
const agent = start('agent', ['agent', '--operator', `http://127.0.0.1:${port}`, '--hostname', 'launched-1', '--region', 'local', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'agent'), ...agentArgs]);
process.stdout.write(`${JSON.stringify({ operator, agent })}\n`);
setInterval(() => {}, 60_000);
