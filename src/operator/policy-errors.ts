import type { PolicyIssue } from '../domain/rollout/policy.js';
import { ApiError } from './errors.js';

/** The policy and quarantine part of the error catalog. */
export const policyErrors = {
  policyInvalid: (issues: PolicyIssue[]) =>
    new ApiError(400, 'POLICY_INVALID', `the policy is invalid, nothing was stored: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues }),
  policyNotFound: (name: string) =>
    new ApiError(404, 'POLICY_NOT_FOUND', `no policy "${name}"; list policies with \`drydock policy list\``, { name }),
  quarantined: (component: string, version: string, rolloutId: string | null) =>
    new ApiError(
      409,
      'VERSION_QUARANTINED',
      `${component} ${version} was quarantined${rolloutId ? ` by rollout ${rolloutId}` : ''} after this rollout was created; an approver must clear it (drydock quarantine clear ${component} ${version} --reason …) before it is approved`,
      { component, version, rollout_id: rolloutId },
    ),
  notQuarantined: (component: string, version: string) =>
    new ApiError(404, 'QUARANTINE_NOT_FOUND', `${component} ${version} is not quarantined; list quarantined versions with \`drydock quarantine list\``, {
      component,
      version,
    }),
};
