import type { PreflightCheck } from '../domain/rollout/preflight.js';
import type { SpecIssue } from '../domain/rollout/spec.js';
import type { UnavailableRollbackVersion } from '../domain/rollout/rollback-needs.js';
import type { RolloutNeedingVersion } from '../store/artifacts.js';
import { ApiError } from './errors.js';

/** The rollout part of the error catalog (kept apart from errors.ts so each file stays small). */
export const rolloutErrors = {
  specInvalid: (issues: SpecIssue[]) =>
    new ApiError(400, 'ROLLOUT_SPEC_INVALID', `the rollout spec is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues }),
  preflightFailed: (checks: PreflightCheck[]) => {
    const failed = checks.filter((c) => c.status === 'fail' && !c.overridden);
    return new ApiError(
      409,
      'PREFLIGHT_FAILED',
      `preflight failed: ${failed.map((c) => `${c.id} (${c.message})`).join('; ')}; fix it, or override a check by name with --override CHECK`,
      { checks, failed: failed.map((c) => c.id) },
    );
  },
  notFound: (id: string) => new ApiError(404, 'ROLLOUT_NOT_FOUND', `no rollout "${id}"; list rollouts with \`drydock rollout list\``, { id }),
  wrongStatus: (id: string, status: string, action: string, allowed: readonly string[]) =>
    new ApiError(409, 'ROLLOUT_WRONG_STATUS', `rollout ${id} is ${status}; ${action} needs it to be ${allowed.join(' or ')}`, {
      id,
      status,
      action,
      allowed,
    }),
  sameApprover: (who: string) =>
    new ApiError(403, 'DISTINCT_APPROVER_REQUIRED', `this rollout needs an approver other than its creator (${who}); ask someone else to approve`, {
      creator: who,
    }),
  approverUnknown: () =>
    new ApiError(
      403,
      'DISTINCT_APPROVER_REQUIRED',
      'this rollout needs an approver other than its creator, and without --tokens nobody is identified; run the operator with a tokens file',
    ),
  nameTaken: (name: string) =>
    new ApiError(409, 'ROLLOUT_EXISTS', `an active rollout named ${name} exists already; wait for it or pick another name`, { name }),
  badEdit: (message: string) => new ApiError(400, 'ROLLOUT_EDIT_INVALID', message),
  /** A regional rollback names a region the rollout has no node in. */
  rollbackRegionUnknown: (id: string, regions: string[], known: string[]) =>
    new ApiError(400, 'ROLLBACK_REGION_UNKNOWN', `rollout ${id} has no node in ${regions.join(', ')}; its regions: ${known.join(', ')}; nothing was changed`, { id, regions, known }),
  rollbackRegionBlueGreen: (id: string) =>
    new ApiError(
      409,
      'ROLLBACK_REGION_BLUE_GREEN',
      `rollout ${id} is blue-green and its old replicas still run: a rollback moves every region back to them at once; roll back without --region (nothing was changed)`,
      { id },
    ),
  /** Rollback refused: the rollout already contracted the schema the previous builds need. */
  rollbackAfterContract: (id: string, reason: string) => new ApiError(409, 'ROLLBACK_AFTER_CONTRACT', `rollout ${id} cannot roll back: ${reason}; nothing was changed`, { id }),
  rollbackVersionUnavailable: (id: string, versions: UnavailableRollbackVersion[]) =>
    new ApiError(
      409,
      'ROLLBACK_VERSION_UNAVAILABLE',
      `rollout ${id} cannot roll back: ${versions.map((v) => `${v.version} is ${v.status} (needed by ${v.nodes.join(', ')})`).join('; ')}; publish or restore that version first, nothing was changed`,
      { id, versions },
    ),
  /** Archive refused: a rollout that can still be rolled back would install this version. */
  artifactNeededForRollback: (id: string, version: string, rollouts: RolloutNeedingVersion[], nodes: unknown[]) =>
    new ApiError(
      409,
      'ARTIFACT_IN_USE',
      `artifact ${id} (${version}) is what ${rollouts.length} rollout(s) would roll back to (${rollouts.map((r) => `${r.name} ${r.status}: ${r.nodes.join(', ')}`).join('; ')}); it can be archived once no rollout that can still be rolled back needs it`,
      { id, nodes, rollouts },
    ),
};
