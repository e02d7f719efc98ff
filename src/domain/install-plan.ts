// The agent's component decision (DESIGN.md §3: `decide(desired, actual) → actions`), pure:
// the clock is an argument and nothing here touches a disk. The agent persists an
// InstallRecord before each phase it enters, so after a crash this function sees exactly
// where the previous process stopped and decides how to finish it.
import type { ArtifactKind, DesiredComponent, InstallPhase } from './protocol.js';
import { compareSemver, parseSemver } from './semver.js';

/**
 * A new version found interrupted this many times in a row (agent killed or crashed while
 * it was being assessed, downloaded or verified) is given up: reverted, or failed when
 * nothing was switched yet. Three, as in issue 3 ("crashes three times in a row").
 */
export const MAX_INTERRUPTED_ATTEMPTS = 3;

/** One component install as the agent journals it (one record per component, the latest). */
export interface InstallRecord {
  component: string;
  version: string;
  previous_version: string | null;
  kind: ArtifactKind;
  artifact_id: string;
  sha256: string;
  /** The request was an explicit rollback (part of "same request" below). */
  rollback: boolean;
  /** The desired state's request id, when the operator sends one (part of "same request"). */
  request_id?: string;
  /** Blue-green: the previous version keeps running beside this one (absent: false). */
  keep_previous?: boolean;
  phase: InstallPhase;
  reason?: string;
  /** How many times this install was found interrupted by a restart of the agent. */
  interrupted: number;
  /** Set when a revert began: a crash mid-revert finishes the revert, never re-assesses. */
  reverting?: string;
  /** A transient failure (download error) is retried from this time on; absent = terminal. */
  retry_at?: string;
  /** Once a done install was followed by pruning: the version dirs removed (maybe none) and kept. */
  pruned?: string[];
  kept?: string[];
  updated_at: string;
}

export const TERMINAL_PHASES: readonly InstallPhase[] = ['done', 'failed', 'reverted'];

export function isTerminal(phase: InstallPhase): boolean {
  return TERMINAL_PHASES.includes(phase);
}

/**
 * Kinds installed by a reboot into an A/B slot (DESIGN.md §12): their assessment spans agent
 * restarts by design, so restarts are not counted as crashes; the slot's try counter bounds it.
 */
export const REBOOT_CLASS_KINDS: readonly ArtifactKind[] = ['os-image'];

/** Not an install in progress: terminal, or `staged` (pre-staged, waiting for the install request). */
export function isResting(phase: InstallPhase): boolean {
  return isTerminal(phase) || phase === 'staged';
}

export type ComponentAction =
  /** Download, verify, install and assess `desired`; `interrupted` carries over a crash count. */
  | { kind: 'install'; component: string; desired: DesiredComponent; previous: string | null; interrupted: number }
  /** Do not install; record `failed` with the reason (the node keeps what it runs). */
  | { kind: 'refuse'; component: string; desired: DesiredComponent; previous: string | null; reason: string }
  /** A switched version was not proven yet: run its assessment again. */
  | { kind: 'assess'; component: string; record: InstallRecord }
  /** Go back to `record.previous_version` and record `reverted` with the reason. */
  | { kind: 'revert'; component: string; record: InstallRecord; reason: string }
  /** Nothing was switched, but the install keeps being interrupted: record `failed`. */
  | { kind: 'fail'; component: string; record: InstallRecord; reason: string };

export interface InstallPlanInput {
  /** The desired components; undefined before the first desired state (recovery only). */
  desired: Readonly<Record<string, DesiredComponent>> | undefined;
  /** Versions the node runs and has proven (committed at `done`, kept at `reverted`). */
  installed: Readonly<Record<string, string>>;
  records: Readonly<Record<string, InstallRecord>>;
  now: Date;
}

/**
 * Decides, per component, what the agent does next. Every record in a non-terminal phase
 * is an install the previous agent process did not finish (installs run one at a time and
 * always end in a terminal phase in-process), so it is resolved before anything new starts:
 * - downloading | verifying: nothing was switched yet → start again cleanly while the same
 *   version is still desired (given up after MAX_INTERRUPTED_ATTEMPTS);
 * - installing: the node may be half switched → revert to the previous version;
 * - assessing: the new version is switched but unproven → assess again, or revert after
 *   MAX_INTERRUPTED_ATTEMPTS interruptions in a row.
 * A downgrade is installed only when the desired state marks it as a rollback. A request that
 * already failed or was reverted is not retried until the desired state changes (a new
 * version, artifact or rollback flag), except transient failures after their `retry_at`.
 * Actions are sorted by component so the order is deterministic.
 */
export function planComponentInstalls(input: InstallPlanInput): ComponentAction[] {
  const names = new Set([...Object.keys(input.desired ?? {}), ...Object.keys(input.records)]);
  const actions: ComponentAction[] = [];
  for (const component of [...names].sort()) {
    const action = decideComponent(component, input);
    if (action) actions.push(action);
  }
  return actions;
}

function decideComponent(component: string, input: InstallPlanInput): ComponentAction | undefined {
  const record = input.records[component];
  const desired = input.desired?.[component];
  if (record && !isResting(record.phase)) {
    const recovery = recover(component, record, desired, input.desired === undefined);
    if (recovery === undefined || 'kind' in recovery) return recovery;
    // Nothing was switched: the desired state decides, and a record nobody continues is closed.
    const next = decideDesired(component, input, desired, recovery.interrupted);
    return next ?? { kind: 'fail', component, record, reason: `interrupted while ${record.phase}; no longer needed by the desired state` };
  }
  return decideDesired(component, input, desired, 0);
}

function decideDesired(component: string, input: InstallPlanInput, desired: DesiredComponent | undefined, interrupted: number): ComponentAction | undefined {
  const record = input.records[component];
  if (!desired) return undefined;
  if (!isPlainName(component) || !isPlainName(desired.version)) {
    return { kind: 'refuse', component, desired, previous: input.installed[component] ?? null, reason: 'refused: component names and versions must be plain names (letters, digits, . _ + -)' };
  }
  const current = input.installed[component] ?? null;
  if (desired.version === current) return undefined;
  // Pre-staged already and still only pre-staging asked for: nothing to do until the install.
  if (record?.phase === 'staged' && desired.prestage === true && record.version === desired.version && record.sha256 === desired.sha256) return undefined;
  if (record && isTerminal(record.phase) && record.phase !== 'done' && isSameRequest(record, desired)) {
    const retry = record.retry_at !== undefined && Date.parse(record.retry_at) <= input.now.getTime();
    return retry ? { kind: 'install', component, desired, previous: current, interrupted: 0 } : undefined;
  }
  if (current !== null && isOlder(desired.version, current) && !desired.rollback) {
    return {
      kind: 'refuse',
      component,
      desired,
      previous: current,
      reason: `downgrade from ${current} to ${desired.version} refused: only an explicit rollback installs an older version`,
    };
  }
  return { kind: 'install', component, desired, previous: current, interrupted };
}

/**
 * Resolves an interrupted install. `{ interrupted }` means nothing was switched yet and the
 * desired state decides (carrying the count when it still asks for the same artifact).
 */
function recover(component: string, record: InstallRecord, desired: DesiredComponent | undefined, noDesiredYet: boolean): ComponentAction | undefined | { interrupted: number } {
  if (record.reverting !== undefined) return { kind: 'revert', component, record, reason: record.reverting };
  const interrupted = record.interrupted + 1;
  switch (record.phase) {
    case 'installing':
      return { kind: 'revert', component, record, reason: `agent restarted while installing ${record.version}; back on ${record.previous_version ?? 'nothing'}` };
    case 'assessing':
      if (REBOOT_CLASS_KINDS.includes(record.kind)) return { kind: 'assess', component, record };
      if (interrupted >= MAX_INTERRUPTED_ATTEMPTS) {
        return { kind: 'revert', component, record, reason: `${record.version} crashed ${interrupted} times in a row during assessment` };
      }
      return { kind: 'assess', component, record: { ...record, interrupted } };
    default: {
      // downloading | verifying: only a temp file exists.
      if (noDesiredYet) return undefined; // wait for the desired state; the node runs what it ran
      if (!desired || !isSameRequest(record, desired)) return { interrupted: 0 };
      if (interrupted >= MAX_INTERRUPTED_ATTEMPTS) {
        return { kind: 'fail', component, record, reason: `interrupted ${interrupted} times in a row while ${record.phase}` };
      }
      return { interrupted };
    }
  }
}

function isSameRequest(record: InstallRecord, desired: DesiredComponent): boolean {
  return (
    record.version === desired.version &&
    record.sha256 === desired.sha256 &&
    record.rollback === desired.rollback &&
    record.request_id === desired.request_id
  );
}

/** Component names and versions become directory names on the node: only plain names pass. */
export function isPlainName(value: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/.test(value) && !value.includes('..');
}

/** `version` sorts before `than`; a version that is not semver cannot be ordered and is not older. */
function isOlder(version: string, than: string): boolean {
  const a = parseSemver(version);
  const b = parseSemver(than);
  return a !== undefined && b !== undefined && compareSemver(a, b) < 0;
}
