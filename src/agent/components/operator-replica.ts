import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseEnv } from 'node:util';
import type { Logger } from 'pino';
import { isSameProcessAlive, processStartTime, stopProcess } from '../drivers/process-driver.js';
import { OPERATOR_COMPONENT } from '../../domain/rollout/schema-steps.js';
import { OPERATOR_BUNDLE_FILE, OPERATOR_ENV_FILE } from '../../control-plane/operator-artifact.js';
import type { ComponentLayout } from './layout.js';

/** The component name of the operator replica an agent supervises on a control-plane node. */
export { OPERATOR_COMPONENT };

export interface OperatorReplicaOptions {
  layout: ComponentLayout;
  /** host:port the replica listens on. */
  listen: string;
  region: string;
  hostname: string;
  /** Node-local settings (DATABASE_URL, DRYDOCK_* …) as KEY=VALUE lines; the artifact's own env file wins over it. */
  nodeEnvFile?: string | undefined;
  /** More arguments for `drydock operator` (e.g. --tokens FILE). */
  extraArgs: readonly string[];
  /** Where the replica's pid and version are recorded, so a restarted agent adopts it. */
  stateFile: string;
  /** SIGTERM → SIGKILL grace when stopping it (default 30 s: it hands its lease over first). */
  stopGraceMs?: number;
  /** How long a stopping replica keeps answering after leaving the registry (its --shutdown-delay). */
  shutdownDelayMs: number;
  log: Logger;
}

interface ReplicaRecord {
  pid: number;
  proc_start: string | null;
  version: string;
}

/** What the replica's /health says, as the agent's assessment needs it. */
export interface ReplicaHealth {
  ready: boolean;
  version: string;
  registered: boolean;
  reason: string;
}

/**
 * The operator replica on this control-plane node: a `drydock operator` process started from
 * `components/operator/current/drydock.mjs` with the node's settings and the version's env file,
 * in its own process group. It outlives the agent (a restarted agent adopts it by pid and start
 * time), and `supervise()` starts it again when it died. The `operator` installer switches it
 * from one version to another (operator-installer.ts).
 */
export class OperatorReplica {
  private record: ReplicaRecord | undefined;
  private restartAt = 0;
  /** Every change of the process (start, stop, switch, supervise) runs after the previous one. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: OperatorReplicaOptions) {
    this.record = readRecord(options.stateFile);
  }

  get url(): string {
    return `http://${this.options.listen}`;
  }

  /** The version running now (as started), or undefined when none runs. */
  get runningVersion(): string | undefined {
    return this.record && isSameProcessAlive(this.record.pid, this.record.proc_start) ? this.record.version : undefined;
  }

  get pid(): number | undefined {
    return this.runningVersion === undefined ? undefined : this.record?.pid;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work, work);
    this.chain = next.catch(() => {});
    return next;
  }

  /** Starts `current` unless it runs already (adopted from a previous agent process). */
  ensureRunning(): Promise<void> {
    return this.exclusive(() => this.ensureRunningNow());
  }

  /**
   * Replaces the running replica by `version` (null: none): the old one stops first (it leaves
   * the registry and hands the lease over), then `current` switches and the new one starts.
   * Nothing else (supervise) starts a replica in between.
   */
  switchTo(version: string | null): Promise<void> {
    return this.exclusive(async () => {
      await this.stopNow();
      this.options.layout.switchCurrent(OPERATOR_COMPONENT, version);
      if (version !== null) await this.startNow(version);
    });
  }

  private async ensureRunningNow(): Promise<void> {
    const current = this.options.layout.currentVersion(OPERATOR_COMPONENT);
    if (current === null) return;
    const running = this.runningVersion;
    if (running === current) return;
    if (running !== undefined) await this.stopNow();
    await this.startNow(current);
  }

  /** Starts it again if it died (at most every 2 s, so a crashing build does not spin). */
  supervise(): Promise<void> {
    return this.exclusive(async () => {
      const now = Date.now();
      if (this.runningVersion !== undefined || now < this.restartAt) return;
      if (this.options.layout.currentVersion(OPERATOR_COMPONENT) === null) return;
      this.restartAt = now + 2_000;
      if (this.record) this.options.log.warn({ version: this.record.version }, 'operator replica is not running; starting it again');
      await this.ensureRunningNow();
    });
  }

  /** SIGTERM (it leaves the registry and hands the lease over), SIGKILL after the grace. */
  stop(): Promise<void> {
    return this.exclusive(() => this.stopNow());
  }

  private async stopNow(): Promise<void> {
    const record = this.record;
    if (!record) return;
    this.options.log.info({ pid: record.pid, version: record.version }, 'stopping the operator replica');
    await stopProcess(record.pid, record.proc_start, this.options.stopGraceMs ?? 30_000);
    this.record = undefined;
    rmSync(this.options.stateFile, { force: true });
  }

  private async startNow(version: string): Promise<void> {
    const dir = this.options.layout.versionDir(OPERATOR_COMPONENT, version);
    const bundle = join(dir, OPERATOR_BUNDLE_FILE);
    if (!existsSync(bundle)) throw new Error(`operator ${version} has no ${OPERATOR_BUNDLE_FILE} in ${dir}`);
    const env: Record<string, string> = { ...process.env } as Record<string, string>;
    if (this.options.nodeEnvFile) Object.assign(env, parseEnv(readFileSync(this.options.nodeEnvFile, 'utf8')) as Record<string, string>);
    const versionEnv = join(dir, OPERATOR_ENV_FILE);
    if (existsSync(versionEnv)) Object.assign(env, parseEnv(readFileSync(versionEnv, 'utf8')) as Record<string, string>);
    const logFile = this.options.layout.logFile(OPERATOR_COMPONENT, 'replica');
    mkdirSync(dirname(logFile), { recursive: true });
    const log = openSync(logFile, 'a');
    try {
      const args = [
        bundle,
        'operator',
        '--listen',
        this.options.listen,
        '--region',
        this.options.region,
        '--hostname',
        this.options.hostname,
        '--advertise-url',
        this.url,
        '--shutdown-delay',
        `${this.options.shutdownDelayMs}ms`,
        ...this.options.extraArgs,
      ];
      const child = spawn(process.execPath, args, { cwd: dir, detached: true, stdio: ['ignore', log, log], env });
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid as number));
        child.once('error', reject);
      });
      child.unref();
      this.record = { pid, proc_start: processStartTime(pid), version };
      mkdirSync(dirname(this.options.stateFile), { recursive: true });
      writeFileSync(this.options.stateFile, JSON.stringify(this.record));
      this.options.log.info({ pid, version, listen: this.options.listen }, 'started the operator replica');
    } finally {
      closeSync(log);
    }
  }

  /** One look at the replica's /health (undefined when it does not answer). */
  async health(timeoutMs = 2_000): Promise<ReplicaHealth | undefined> {
    try {
      const response = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) return undefined;
      const body = (await response.json()) as Partial<ReplicaHealth>;
      return { ready: body.ready === true, version: String(body.version ?? ''), registered: body.registered === true, reason: String(body.reason ?? '') };
    } catch {
      return undefined;
    }
  }

  /**
   * Waits until the replica is ready, registered and reports `version`, or until `untilMs`.
   * Returns undefined when it is, else why not (what it last said, or that it never answered).
   */
  async waitProven(version: string, untilMs: number, stopping: () => boolean): Promise<string | undefined> {
    let last = 'it never answered /health';
    while (Date.now() < untilMs) {
      if (stopping()) throw new Error('agent stopping during the operator assessment');
      if (this.runningVersion !== version) last = `the replica process of ${version} exited`;
      const health = await this.health();
      if (health) {
        if (health.version !== version) last = `it reports version ${health.version}`;
        else if (!health.ready) last = `not ready: ${health.reason}`;
        else if (!health.registered) last = 'ready but not registered in the replica registry';
        else return undefined;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return last;
  }
}

function readRecord(file: string): ReplicaRecord | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as ReplicaRecord;
    return Number.isInteger(parsed.pid) && typeof parsed.version === 'string' ? parsed : undefined;
  } catch {
    return undefined;
  }
}
