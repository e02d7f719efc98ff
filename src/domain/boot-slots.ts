// A/B boot slots of a reboot-class component (DESIGN.md §12), as pure decisions over a small
// state the agent journals (agent/components/os-image-slots.ts) before it acts on it. The
// agent plays the boot loader: at start it "boots" (`boot`), consuming a try of an unblessed
// slot; the slot's required checks then bless it or ask for another reboot, and once the tries
// are spent the node boots the other slot, which is always a blessed one.

export type SlotName = 'a' | 'b';

/** What a slot holds. `null`: the image the node came with (never staged by us, counts as blessed). */
export interface SlotContent {
  version: string;
  sha256: string;
  /** Its required checks passed once on a boot from it. */
  blessed: boolean;
}

export interface BootSlotsState {
  slots: Record<SlotName, SlotContent | null>;
  /** The slot the node booted from. */
  active: SlotName;
  /** The slot the next boot uses. */
  next: SlotName;
  /** Boots left for an unblessed `next` (0 when none is pending). */
  tries_left: number;
  /** A reboot was asked for (journaled before the reboot command runs); cleared by `boot`. */
  reboot: { reason: string } | null;
  /** The node fell back from `version` (its tries were spent) and the install has not reported it yet. */
  fallback: { version: string; reason: string } | null;
  /** The latest failed check of the slot being tried, for the fallback's reason. */
  last_failure: string | null;
}

/** Boots an unblessed slot gets before the node falls back (the agent's `--boot-tries`). */
export const DEFAULT_BOOT_TRIES = 3;

export function initialBootSlots(): BootSlotsState {
  return { slots: { a: null, b: null }, active: 'a', next: 'a', tries_left: 0, reboot: null, fallback: null, last_failure: null };
}

export function otherSlot(slot: SlotName): SlotName {
  return slot === 'a' ? 'b' : 'a';
}

export function isBlessed(state: BootSlotsState, slot: SlotName): boolean {
  return state.slots[slot]?.blessed ?? true;
}

export function slotVersion(state: BootSlotsState, slot: SlotName): string | null {
  return state.slots[slot]?.version ?? null;
}

/** A try of an unblessed slot is under way (armed, rebooting into it, or booted but unchecked). */
export function trialInProgress(state: BootSlotsState): boolean {
  return state.next !== state.active || !isBlessed(state, state.active) || state.reboot !== null;
}

export type Result = { ok: true; state: BootSlotsState; slot: SlotName } | { ok: false; reason: string };

/**
 * Puts `version` into the inactive slot (staging). Refused while a trial is under way: the
 * inactive slot may then be the only blessed one, the one the node falls back to.
 */
export function stage(state: BootSlotsState, image: { version: string; sha256: string }): Result {
  if (trialInProgress(state)) return { ok: false, reason: `cannot stage ${image.version}: a boot of ${slotVersion(state, state.next) ?? 'the other slot'} is being assessed` };
  const slot = otherSlot(state.active);
  return { ok: true, slot, state: { ...state, slots: { ...state.slots, [slot]: { version: image.version, sha256: image.sha256, blessed: false } }, last_failure: null } };
}

/** The inactive slot already holds exactly this image (pre-staged). */
export function isStaged(state: BootSlotsState, image: { version: string; sha256: string }): boolean {
  const content = state.slots[otherSlot(state.active)];
  return content !== null && content.version === image.version && content.sha256 === image.sha256;
}

/** The staged slot becomes the next boot, with `tries` boots to prove itself. */
export function arm(state: BootSlotsState, version: string, tries: number): Result {
  const slot = otherSlot(state.active);
  if (state.slots[slot]?.version !== version) return { ok: false, reason: `${version} is not staged in the inactive slot ${slot}` };
  if (state.slots[slot]?.blessed) return { ok: true, slot, state: { ...state, next: slot, tries_left: 0, fallback: null } };
  return { ok: true, slot, state: { ...state, next: slot, tries_left: Math.max(1, Math.floor(tries)), fallback: null, last_failure: null } };
}

export function requestReboot(state: BootSlotsState, reason: string): BootSlotsState {
  return { ...state, reboot: { reason } };
}

/**
 * The boot loader, at agent start. Without a requested reboot the agent only restarted: the
 * node still runs the same slot. An unblessed next slot consumes a try; with none left the
 * node boots the other slot (blessed, as `stage` guarantees) and the fallback is recorded.
 */
export function boot(state: BootSlotsState): BootSlotsState {
  if (state.reboot === null) return state;
  const booted = { ...state, reboot: null };
  if (isBlessed(state, state.next)) return { ...booted, active: state.next, tries_left: 0 };
  if (state.tries_left > 0) return { ...booted, active: state.next, tries_left: state.tries_left - 1 };
  const back = otherSlot(state.next);
  const version = slotVersion(state, state.next) ?? '(unknown)';
  return {
    ...booted,
    active: back,
    next: back,
    tries_left: 0,
    fallback: state.fallback ?? { version, reason: fallbackReason(version, state.last_failure, back, slotVersion(state, back)) },
  };
}

function fallbackReason(version: string, failure: string | null, back: SlotName, backVersion: string | null): string {
  return `boot checks of ${version} failed on every try${failure ? ` (last: ${failure})` : ''}; booted slot ${back} (${backVersion ?? 'the original image'}) again`;
}

/**
 * The required checks of the booted (unblessed) slot ended: success blesses it; a failure asks
 * for another boot of it while tries are left, else marks the other slot for the next boot.
 */
export function checked(state: BootSlotsState, outcome: { ok: true } | { ok: false; reason: string }): BootSlotsState {
  const slot = state.active;
  const content = state.slots[slot];
  if (content === null || content.blessed) return state;
  if (outcome.ok) {
    return { ...state, slots: { ...state.slots, [slot]: { ...content, blessed: true } }, next: slot, tries_left: 0, last_failure: null };
  }
  if (state.tries_left > 0) return requestReboot({ ...state, next: slot, last_failure: outcome.reason }, `boot checks of ${content.version} failed: ${outcome.reason}`);
  const back = otherSlot(slot);
  return requestReboot(
    { ...state, next: back, tries_left: 0, last_failure: outcome.reason, fallback: { version: content.version, reason: fallbackReason(content.version, outcome.reason, back, slotVersion(state, back)) } },
    `falling back to slot ${back}`,
  );
}

/** Undoes an armed but not yet booted slot (an install reverted before its reboot). */
export function disarm(state: BootSlotsState): BootSlotsState {
  if (state.active !== state.next && state.reboot === null) return { ...state, next: state.active, tries_left: 0 };
  return state;
}

/** The install reported the fallback (`reverted`): forget it. */
export function clearFallback(state: BootSlotsState): BootSlotsState {
  return state.fallback === null ? state : { ...state, fallback: null };
}

/** What the install's assessment does next for `version`, from the slot state. */
export type AssessStep =
  /** The slot is armed but not booted yet, or a reboot was asked for and has not happened: reboot. */
  | { kind: 'reboot' }
  /** The node booted the unblessed slot: run its required checks. */
  | { kind: 'check' }
  /** The node runs the version from a blessed slot: proven. */
  | { kind: 'blessed' }
  /** Its tries were spent and the node booted the other slot again. */
  | { kind: 'fell-back'; reason: string }
  | { kind: 'lost'; reason: string };

export function assessStep(state: BootSlotsState, version: string): AssessStep {
  if (state.fallback?.version === version) return { kind: 'fell-back', reason: state.fallback.reason };
  const active = state.slots[state.active];
  if (state.reboot !== null) return { kind: 'reboot' };
  if (active?.version === version) return active.blessed ? { kind: 'blessed' } : { kind: 'check' };
  if (state.next !== state.active && state.slots[state.next]?.version === version) return { kind: 'reboot' };
  return { kind: 'lost', reason: `${version} is neither booted nor the next boot (slot ${state.active} runs ${slotVersion(state, state.active) ?? 'the original image'})` };
}

/** The slots as heartbeats report them. */
export function slotsReport(state: BootSlotsState): { a: { version: string | null }; b: { version: string | null }; active: SlotName; next: SlotName; tries_left: number } {
  return { a: { version: slotVersion(state, 'a') }, b: { version: slotVersion(state, 'b') }, active: state.active, next: state.next, tries_left: state.tries_left };
}
