import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { chooseVersionsToPrune, DEFAULT_KEEP_VERSIONS } from '../../domain/component-prune.js';
import { type ComponentAction, type InstallRecord, planComponentInstalls, REBOOT_CLASS_KINDS } from '../../domain/install-plan.js';
import type { DesiredComponent, InstallReport } from '../../domain/protocol.js';
import { type Downloaded, downloadArtifact } from './download.js';
import { downloadOciImage, OciRefusal } from './oci-download.js';
import { parseOciRef } from '../../domain/oci-ref.js';
import { UNSUPERVISED_REASON } from './agent-installer.js';
import { type InstallContext, type Installer, installerFor } from './installers.js';
import { type InstallJournal, readJournal, writeJournal } from './journal.js';
import { ComponentLayout } from './layout.js';
import { killLeftoverStep } from './run-step.js';
import { NO_OPERATOR_REPLICA_REASON } from './operator-installer.js';
import { refusalReason, type TrustPolicy } from './verify.js';

export interface ComponentReconcilerOptions {
  dataDir: string;
  /** Base URL the desired component `url` paths are relative to. */
  operatorUrl: string;
  token?: string | undefined;
  nodeId: () => string;
  /** This node's credential for the agent gateway's download route (undefined before registration). */
  nodeCredential?: () => string | undefined;
  trust: TrustPolicy;
  /** Components this process provides itself and reports as installed (e.g. `node-agent`). */
  builtIn?: Record<string, string>;
  /** Deadline of a `health` check (default 30 s). */
  healthDeadlineMs?: number;
  /** Deadline of a script's `install` / `rollback` (default 10 min). */
  scriptDeadlineMs?: number;
  /** Deadline of one artifact download (default 10 min). */
  downloadTimeoutMs?: number;
  /** Wait before retrying a failed download (default 30 s). */
  downloadRetryMs?: number;
  /** Installs artifacts of kind `agent`; only a supervised agent has one (absent: refused). */
  agentInstaller?: Installer;
  /** Installs artifacts of kind `operator`; only an agent that runs an operator replica has one (absent: refused). */
  operatorInstaller?: Installer;
  /** Installs artifacts of kind `os-image` into the node's A/B slots (absent: refused). */
  osImageInstaller?: Installer;
  /**
   * Versions of each component kept on disk once an install is done (default 2: the current and
   * the previous one); older version dirs are removed, never current nor a rollback's version.
   */
  keepVersions?: number;
  /** Called after every persisted phase change, e.g. to heartbeat at once. */
  onPhaseChange?: (report: InstallReport) => void;
  log: Logger;
  clock?: () => Date;
}

/**
 * The imperative shell around `planComponentInstalls`: one install at a time, each phase
 * written to the journal before the agent acts on it, so a kill -9 anywhere leaves a record
 * from which the next process finishes the job (done) or undoes it (reverted).
 */
export class ComponentReconciler {
  readonly layout: ComponentLayout;
  private journal: InstallJournal;
  private desired: Record<string, DesiredComponent> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private leftoversEnded = false;
  private readonly clock: () => Date;

  constructor(private readonly options: ComponentReconcilerOptions) {
    this.layout = new ComponentLayout(join(options.dataDir, 'components'));
    this.journal = readJournal(this.layout.journalFile);
    this.clock = options.clock ?? (() => new Date());
  }

  /**
   * The version of `component` the desired state asks for, and whether it keeps the previous
   * version running beside it (blue-green); undefined until a desired state names it.
   */
  desiredOf(component: string): { version: string; keepPrevious: boolean } | undefined {
    const desired = this.desired?.[component];
    return desired ? { version: desired.version, keepPrevious: desired.keep_previous === true } : undefined;
  }

  /** Proven versions, as heartbeats report them (a version being assessed is not reported yet). */
  installedVersions(): Record<string, string> {
    return { ...this.journal.installed, ...this.options.builtIn };
  }

  /**
   * Records `version` of `component` as installed when the node has none yet: a version put in
   * place before the agent ran (the first operator build of a control-plane node).
   */
  seedInstalled(component: string, version: string): void {
    if (this.journal.installed[component] !== undefined) return;
    this.journal.installed[component] = version;
    writeJournal(this.layout.journalFile, this.journal);
  }

  reports(): InstallReport[] {
    return Object.values(this.journal.installs)
      .sort((a, b) => a.component.localeCompare(b.component))
      .map((r) => ({
        component: r.component,
        version: r.version,
        previous_version: r.previous_version,
        phase: r.phase,
        ...(r.reason ? { reason: r.reason } : {}),
        // Only a transient failure (a download error) gets a retry time, and only a failure is retried.
        ...(r.phase === 'failed' ? { retryable: r.retry_at !== undefined } : {}),
        ...(r.pruned && r.pruned.length > 0 ? { pruned: r.pruned, kept: r.kept ?? [] } : {}),
        updated_at: r.updated_at,
      }));
  }

  /**
   * Converges to `desired` (undefined: only finish what a previous process left half done).
   * Calls are serialized; a call during a pass makes one more pass with the latest desired.
   */
  reconcile(desired?: Record<string, DesiredComponent>): Promise<void> {
    if (desired) this.desired = desired;
    return this.run();
  }

  /**
   * At agent start, before the operator is reached: finishes (assesses, reboots again or falls
   * back) what reboot-class installs left, so boot assessment never waits for the operator.
   */
  recoverBoot(): Promise<void> {
    if (this.running) return this.running;
    this.running = (async () => {
      try {
        await this.pass((action) => REBOOT_CLASS_KINDS.includes(kindOf(action)));
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async pass(only?: (action: ComponentAction) => boolean): Promise<void> {
    if (!this.leftoversEnded) {
      // A step the previous (killed) process left running must not go on changing the node
      // while this one reverts or assesses again: end it before anything else.
      this.leftoversEnded = true;
      for (const file of this.layout.stepPidFiles()) {
        const pid = await killLeftoverStep(file);
        if (pid !== undefined) this.options.log.warn({ pid, pid_file: file }, 'ended an installer step left running by a previous agent process');
      }
    }
    const planned = planComponentInstalls({ desired: this.desired, installed: this.installedVersions(), records: this.journal.installs, now: this.clock() });
    const actions = only ? planned.filter(only) : planned;
    for (const action of actions) {
      try {
        await this.execute(action);
      } catch (error) {
        // Unexpected (disk full, permissions): the record stays in its phase and the next
        // pass treats it as interrupted, exactly like a crash.
        this.options.log.error({ err: error, component: action.component }, 'component install step failed');
      }
    }
    if (!only) this.pruneSettled();
  }

  /**
   * Once a component's install is done and it runs the desired version, removes its old version
   * dirs (domain/component-prune.ts), once per install: the record then says what went, and the
   * next heartbeat reports it (the operator records node.components_pruned).
   */
  private pruneSettled(): void {
    for (const [component, desired] of Object.entries(this.desired ?? {})) {
      const record = this.journal.installs[component];
      if (!record || record.phase !== 'done' || record.pruned !== undefined) continue;
      if (record.version !== desired.version || this.journal.installed[component] !== desired.version) continue;
      // Installers with a layout of their own (the agent, the operator) keep their own versions.
      if (this.layout.currentVersion(component) !== desired.version) continue;
      try {
        const choice = chooseVersionsToPrune({
          onDisk: this.layout.versionsOnDisk(component),
          current: desired.version,
          protect: [record.previous_version, desired.previous_version],
          keep: this.options.keepVersions ?? DEFAULT_KEEP_VERSIONS,
        });
        for (const version of choice.prune) this.layout.removeVersion(component, version);
        if (choice.prune.length > 0) this.options.log.info({ component, pruned: choice.prune, kept: choice.keep }, 'pruned old component versions');
        this.save({ ...record, pruned: choice.prune, kept: choice.keep });
        if (choice.prune.length > 0) this.options.onPhaseChange?.(this.reports().find((r) => r.component === component)!);
      } catch (error) {
        this.options.log.error({ err: error, component }, 'pruning old component versions failed');
      }
    }
  }

  private async execute(action: ComponentAction): Promise<void> {
    switch (action.kind) {
      case 'install':
        return this.install(action.component, action.desired, action.previous, action.interrupted);
      case 'refuse':
        this.save({ ...this.newRecord(action.component, action.desired, action.previous, 0), phase: 'failed', reason: action.reason });
        return;
      case 'assess':
        return this.assess(action.record);
      case 'revert':
        return this.revert(action.record, action.reason);
      case 'fail':
        this.save({ ...action.record, phase: 'failed', reason: action.reason });
        return;
    }
  }

  private newRecord(component: string, desired: DesiredComponent, previous: string | null, interrupted: number): InstallRecord {
    return {
      component,
      version: desired.version,
      previous_version: previous,
      kind: desired.kind,
      artifact_id: desired.artifact_id,
      sha256: desired.sha256,
      rollback: desired.rollback,
      ...(desired.request_id === undefined ? {} : { request_id: desired.request_id }),
      ...(desired.keep_previous ? { keep_previous: true } : {}),
      phase: 'downloading',
      interrupted,
      updated_at: this.clock().toISOString(),
    };
  }

  private async install(component: string, desired: DesiredComponent, previous: string | null, interrupted: number): Promise<void> {
    const installer = this.installerFor(desired.kind);
    const fresh = this.newRecord(component, desired, previous, interrupted);
    if (installer?.isStaged?.(this.context(fresh))) {
      // Pre-staged already (downloaded, verified, placed): only the switch is left. The
      // signature is checked again: the trusted keys may have changed since.
      const refusal = refusalReason(component, desired, desired.sha256, this.options.trust);
      if (refusal) {
        this.save({ ...fresh, phase: 'failed', reason: refusal });
        return;
      }
      if (desired.prestage) {
        this.save({ ...fresh, phase: 'staged' });
        return;
      }
      const record = this.save({ ...fresh, phase: 'installing' });
      return this.activateAndAssess(record, installer);
    }
    const record = this.save(fresh);
    const file = this.layout.downloadFile(component, desired.version);
    let sha256: string;
    try {
      ({ sha256 } = await this.download(desired, file));
    } catch (error) {
      if (error instanceof OciRefusal) {
        this.save({ ...record, phase: 'failed', reason: `registry refused: ${error.message}` });
        return;
      }
      const retryAt = new Date(this.clock().getTime() + (this.options.downloadRetryMs ?? 30_000)).toISOString();
      this.save({ ...record, phase: 'failed', reason: `download failed: ${(error as Error).message}`, retry_at: retryAt });
      return;
    }
    this.save({ ...record, phase: 'verifying' });
    const refusal = refusalReason(component, desired, sha256, this.options.trust) ?? (installer ? undefined : this.missingInstaller(desired.kind));
    if (refusal) {
      rmSync(file, { force: true });
      this.save({ ...record, phase: 'failed', reason: refusal });
      return;
    }
    this.save({ ...record, phase: 'installing' });
    try {
      if (installer!.place) await installer!.place(this.context(record), file);
      else await this.layout.unpack(component, desired.version, file);
    } catch (error) {
      this.save({ ...record, phase: 'failed', reason: `archive could not be unpacked: ${(error as Error).message}` });
      return;
    } finally {
      rmSync(file, { force: true });
    }
    if (desired.prestage) {
      // Pre-staging: placed, nothing switched; the install itself comes with the next request.
      this.save({ ...record, phase: 'staged' });
      return;
    }
    return this.activateAndAssess(record, installer!);
  }

  /** The bytes from the operator, or (an os-image published by reference) from its OCI registry. */
  private download(desired: DesiredComponent, file: string): Promise<Downloaded> {
    if (desired.ref !== undefined) {
      const parsed = parseOciRef(desired.ref);
      if (!parsed.ok) throw new OciRefusal(parsed.reason);
      return downloadOciImage({ ref: parsed.ref, file, timeoutMs: this.options.downloadTimeoutMs });
    }
    return downloadArtifact({
      url: `${this.options.operatorUrl.replace(/\/+$/, '')}${desired.url}`,
      token: this.options.token,
      nodeCredential: this.options.nodeCredential?.(),
      file,
      maxBytes: desired.size,
      timeoutMs: this.options.downloadTimeoutMs,
    });
  }

  private async activateAndAssess(record: InstallRecord, installer: Installer): Promise<void> {
    const failed = await installer.activate(this.context(record));
    if (failed) return this.revert(record, failed);
    // Interruptions of the download do not count against the new version's assessment.
    await this.assess({ ...record, interrupted: 0 });
  }

  private async assess(record: InstallRecord): Promise<void> {
    const assessing = this.save({ ...record, phase: 'assessing' });
    const installer = this.installerFor(record.kind);
    // A journal left by a supervised agent, read by an unsupervised one: it cannot be assessed here.
    const failed = installer ? await installer.assess(this.context(record)) : this.missingInstaller(record.kind);
    if (failed) return this.revert(assessing, failed);
    this.journal.installed[record.component] = record.version;
    this.save({ ...assessing, phase: 'done', interrupted: 0 });
    await installer!.settled?.(this.context(record));
  }

  private async revert(record: InstallRecord, reason: string): Promise<void> {
    const reverting = this.save({ ...record, reverting: reason });
    this.layout.removeStaging(record.component, record.version);
    const installer = this.installerFor(record.kind);
    const undoFailed = installer ? await installer.revert(this.context(record)) : undefined;
    if (record.previous_version === null) delete this.journal.installed[record.component];
    else this.journal.installed[record.component] = record.previous_version;
    const { reverting: _done, ...rest } = reverting;
    this.save({ ...rest, phase: 'reverted', reason: undoFailed ? `${reason}; ${undoFailed}` : reason });
    this.options.log.warn({ component: record.component, version: record.version, back_to: record.previous_version, reason }, 'component reverted');
    await installer?.settled?.(this.context(record));
  }

  private installerFor(kind: InstallRecord['kind']): Installer | undefined {
    if (kind === 'agent') return this.options.agentInstaller;
    if (kind === 'operator') return this.options.operatorInstaller;
    if (kind === 'os-image') return this.options.osImageInstaller;
    return installerFor(kind);
  }

  private missingInstaller(kind: InstallRecord['kind']): string {
    if (kind === 'agent') return UNSUPERVISED_REASON;
    if (kind === 'operator') return NO_OPERATOR_REPLICA_REASON;
    if (kind === 'os-image') return 'artifact kind "os-image" needs A/B boot slots, which this agent does not keep';
    return `artifact kind "${kind}" cannot be installed by this agent`;
  }

  private context(record: InstallRecord): InstallContext {
    return {
      layout: this.layout,
      component: record.component,
      version: record.version,
      previous: record.previous_version,
      nodeId: this.options.nodeId(),
      healthDeadlineMs: this.options.healthDeadlineMs ?? 30_000,
      scriptDeadlineMs: this.options.scriptDeadlineMs ?? 600_000,
      keepPrevious: record.keep_previous === true,
      sha256: record.sha256,
    };
  }

  /** Persists the record before the agent acts on its phase, then tells the agent. */
  private save(record: InstallRecord): InstallRecord {
    const previous = this.journal.installs[record.component];
    const saved = { ...record, updated_at: this.clock().toISOString() };
    this.journal.installs[record.component] = saved;
    writeJournal(this.layout.journalFile, this.journal);
    if (previous?.phase !== saved.phase || previous.version !== saved.version) {
      this.options.log.info({ component: saved.component, version: saved.version, phase: saved.phase, reason: saved.reason }, 'component install phase');
      this.options.onPhaseChange?.(this.reports().find((r) => r.component === saved.component)!);
    }
    return saved;
  }
}

function kindOf(action: ComponentAction) {
  return 'record' in action ? action.record.kind : action.desired.kind;
}
