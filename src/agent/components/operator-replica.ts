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
  /**
   * The second address (blue-green): a new version starts here beside the one running on the
   * other. The two swap roles from one blue-green rollout to the next. Absent: no blue-green.
   */
  altListen?: string | undefined;
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
  /** host:port it listens on (absent in records of older agents: the primary address). */
  listen?: string;
}

/** The state file: the replica serving as `current`, and the one kept running beside it (blue-green). */
interface StateRecord extends ReplicaRecord {
  previous?: ReplicaRecord;
}

/** Refusal of a blue-green install by an agent with one operator address. */
export const NO_ALT_LISTEN_REASON =
  'blue-green needs a second address for the new operator replica: start the agent with --operator-listen-alt HOST:PORT';

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
  /** Blue-green: the previous version, still running beside `record` until it is retired or takes over again. */
  private previous: ReplicaRecord | undefined;
  /** Where the replica last listened: a replica started again (it died) comes back there. */
  private lastListen: string;
  private restartAt = 0;
  /** Every change of the process (start, stop, switch, supervise) runs after the previous one. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: OperatorReplicaOptions) {
    const state = readState(options.stateFile);
    this.record = state?.record;
    this.previous = state?.previous;
    this.lastListen = this.record?.listen ?? options.listen;
  }

  /** The URL of the replica serving as `current`. */
  get url(): string {
    return `http://${this.record?.listen ?? this.lastListen}`;
  }

  /** The version kept running beside the current one (blue-green), or undefined. */
  get previousVersion(): string | undefined {
    return this.previous && isSameProcessAlive(this.previous.pid, this.previous.proc_start) ? this.previous.version : undefined;
  }

  /** The pids of every replica process this agent runs (current and kept). */
  get pids(): number[] {
    return [this.record, this.previous].filter((r): r is ReplicaRecord => r !== undefined && isSameProcessAlive(r.pid, r.proc_start)).map((r) => r.pid);
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
      await this.stopPreviousNow();
      await this.stopNow();
      this.options.layout.switchCurrent(OPERATOR_COMPONENT, version);
      if (version !== null) await this.startNow(version);
    });
  }

  /**
   * Blue-green: starts `version` on the other address while the running replica keeps running
   * (and serving) as the previous one; `current` switches to the new version. A previous replica
   * still kept from an earlier blue-green stops first: two run at most.
   */
  startBeside(version: string): Promise<void> {
    return this.exclusive(async () => {
      const alt = this.options.altListen;
      if (!alt) throw new Error(NO_ALT_LISTEN_REASON);
      await this.stopPreviousNow();
      const running = this.runningVersion === undefined ? undefined : this.record;
      if (!running) await this.stopNow();
      const used = running?.listen ?? this.lastListen;
      this.previous = running;
      this.record = undefined;
      this.lastListen = used === alt ? this.options.listen : alt;
      this.options.layout.switchCurrent(OPERATOR_COMPONENT, version);
      await this.startNow(version);
    });
  }

  /**
   * Blue-green, back: the previous replica (still running) becomes the current one again and
   * the newer one stops. Nothing starts, so the old version serves at once.
   */
  swapBack(): Promise<void> {
    return this.exclusive(async () => {
      const previous = this.previous;
      if (!previous || !isSameProcessAlive(previous.pid, previous.proc_start)) throw new Error('no previous operator replica runs any more');
      await this.stopNow();
      this.record = previous;
      this.previous = undefined;
      this.lastListen = previous.listen ?? this.options.listen;
      this.options.layout.switchCurrent(OPERATOR_COMPONENT, previous.version);
      this.save();
      this.options.log.info({ pid: previous.pid, version: previous.version }, 'the previous operator replica is current again');
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

  /**
   * Starts it again if it died (at most every 2 s, so a crashing build does not spin). The
   * previous replica kept beside it stops once the desired state asks for the running version
   * without keeping the previous one (retired). A desired state not known yet, or one asking for
   * the previous version back (its install makes it current again), stops nothing.
   */
  supervise(desired?: { version: string; keepPrevious: boolean }): Promise<void> {
    return this.exclusive(async () => {
      const retired = desired !== undefined && !desired.keepPrevious && desired.version === this.runningVersion;
      if (this.previous && (retired || this.previousVersion === undefined)) {
        if (this.previousVersion !== undefined) this.options.log.info({ version: this.previous.version }, 'retiring the previous operator replica');
        await this.stopPreviousNow();
      }
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
    this.save();
  }

  private async stopPreviousNow(): Promise<void> {
    const previous = this.previous;
    if (!previous) return;
    this.options.log.info({ pid: previous.pid, version: previous.version }, 'stopping the previous operator replica');
    await stopProcess(previous.pid, previous.proc_start, this.options.stopGraceMs ?? 30_000);
    this.previous = undefined;
    this.save();
  }

  /** Writes both records (none left: the file goes), so a restarted agent adopts what runs. */
  private save(): void {
    const state: StateRecord | undefined = this.record
      ? { ...this.record, ...(this.previous ? { previous: this.previous } : {}) }
      : this.previous
        ? { ...this.previous, pid: 0, proc_start: null, version: '', previous: this.previous }
        : undefined;
    if (!state) {
      rmSync(this.options.stateFile, { force: true });
      return;
    }
    mkdirSync(dirname(this.options.stateFile), { recursive: true });
    writeFileSync(this.options.stateFile, JSON.stringify(state));
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
      const listen = this.lastListen;
      const args = [
        bundle,
        'operator',
        '--listen',
        listen,
        '--region',
        this.options.region,
        '--hostname',
        this.options.hostname,
        '--advertise-url',
        `http://${listen}`,
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
      this.record = { pid, proc_start: processStartTime(pid), version, listen };
      this.save();
      this.options.log.info({ pid, version, listen }, 'started the operator replica');
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
      const exited = this.runningVersion !== version;
      if (exited) last = `the replica process of ${version} exited`;
      const health = await this.health();
      if (health) {
        // Its process gone and yet an answer: another process holds the address.
        if (health.version !== version) last = exited ? `the replica process of ${version} exited and another process answers at ${this.url} (version ${health.version}): is the address taken?` : `it reports version ${health.version}`;
        else if (!health.ready) last = `not ready: ${health.reason}`;
        else if (!health.registered) last = 'ready but not registered in the replica registry';
        else return undefined;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return last;
  }
}

const isRecord = (r: ReplicaRecord | undefined): r is ReplicaRecord => r !== undefined && Number.isInteger(r.pid) && r.pid > 0 && typeof r.version === 'string';

function readState(file: string): { record: ReplicaRecord | undefined; previous: ReplicaRecord | undefined } | undefined {
  try {
    const { previous, ...record } = JSON.parse(readFileSync(file, 'utf8')) as StateRecord;
    return { record: isRecord(record) ? record : undefined, previous: isRecord(previous) ? previous : undefined };
  } catch {
    return undefined;
  }
}
