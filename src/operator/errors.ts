/**
 * The error catalog: every error a user can get has a stable code, an HTTP status and a
 * message that says what to do next. Routes throw these; the error handler renders
 * `{"error": {"code", "message", "details"}}`.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    /** `cause`: the error this one stands for, kept for the log (never sent to the client). */
    options?: { cause?: unknown },
  ) {
    // No `cause` property at all when there is none, rather than one holding undefined.
    super(message, options?.cause === undefined ? undefined : options);
  }
}

/** Codes are spelled out, one per entry, so `grep NODE_NOT_FOUND` finds where each is made. */
const notFound = (code: string, what: string, id: string, hint: string) => new ApiError(404, code, `no ${what} "${id}"; ${hint}`, { id });

export const errors = {
  validation: (details: Record<string, unknown>) =>
    new ApiError(400, 'VALIDATION_FAILED', 'the request is invalid; see details.issues for each field', details),
  malformedJson: (reason: string) => new ApiError(400, 'MALFORMED_JSON', `the request body is not valid JSON: ${reason}`),
  unauthenticated: () =>
    new ApiError(401, 'UNAUTHENTICATED', 'missing or unknown bearer token; send `Authorization: Bearer <token>` (DRYDOCK_TOKEN for the CLI)'),
  forbidden: (needed: string, role: string) =>
    new ApiError(403, 'FORBIDDEN', `this action needs role ${needed} or higher; your token has role ${role}`, { needed, role }),
  nodeNotFound: (id: string, hint: string) => notFound('NODE_NOT_FOUND', 'node', id, hint),
  instanceNotFound: (id: string, hint: string) => notFound('INSTANCE_NOT_FOUND', 'instance', id, hint),
  deploymentNotFound: (id: string, hint: string) => notFound('DEPLOYMENT_NOT_FOUND', 'deployment', id, hint),
  artifactNotFound: (id: string, hint: string) => notFound('ARTIFACT_NOT_FOUND', 'artifact', id, hint),
  migrationNotFound: (id: string, hint: string) => notFound('MIGRATION_NOT_FOUND', 'migration', id, hint),
  /** Anything a route threw that the catalog does not know: a 500 whose log keeps the original as `cause`. */
  internal: (cause: unknown) =>
    new ApiError(500, 'INTERNAL', 'the operator failed to handle this request; see its log', {}, { cause }),
  routeNotFound: (method: string, url: string) =>
    new ApiError(404, 'ROUTE_NOT_FOUND', `no route ${method} ${url}; see /openapi.json for the API`),
  nodeDown: (hostname: string) =>
    new ApiError(409, 'NODE_DOWN', `node ${hostname} is down (no heartbeat); bring its agent back before draining it`, { hostname }),
  nodeCredentialInvalid: (id: string) =>
    new ApiError(403, 'NODE_CREDENTIAL_INVALID', `this agent does not hold the credential of node ${id}; it must register again (another agent may have registered this hostname since)`, { id }),
  nodeNotRegistered: (id: string) =>
    new ApiError(404, 'NODE_NOT_REGISTERED', `node ${id} is not registered; register again`, { id }),
  drainCannotFit: (unplaceable: unknown[]) =>
    new ApiError(
      409,
      'DRAIN_CANNOT_FIT',
      `${unplaceable.length} instance(s) fit on no other ready node; add capacity or enable nodes, nothing was changed`,
      { unplaceable },
    ),
  vmImageInvalid: (image: string, reason: string) =>
    new ApiError(
      422,
      'VM_IMAGE_INVALID',
      `workload.image "${image}" ${reason}; publish one with \`drydock vm build-image\` and \`drydock artifacts publish --kind vm-image\``,
      { image },
    ),
  deploymentExists: (name: string) =>
    new ApiError(409, 'DEPLOYMENT_EXISTS', `a deployment named ${name} exists already; pick another name`, { name }),
  instanceNotRunning: (id: string) =>
    new ApiError(409, 'INSTANCE_NOT_RUNNING', `instance ${id} is being stopped; only running instances migrate`, { id }),
  migrationInProgress: (id: string, replacement: string, cause?: unknown) =>
    new ApiError(
      409,
      'MIGRATION_IN_PROGRESS',
      `instance ${id} is already migrating (replacement ${replacement}); wait for it`,
      { id, replacement },
      { cause },
    ),
  liveMoveUnsupported: (id: string, driver: string) =>
    new ApiError(422, 'LIVE_MIGRATION_UNSUPPORTED', `instance ${id} runs under the ${driver} driver, which cannot move live; use mode restart`, { id, driver }),
  instancePinned: (id: string) =>
    new ApiError(409, 'INSTANCE_PINNED', `instance ${id} is pinned by its deployment's node_selector; pass force to move it anyway`, { id }),
  targetInvalid: (reason: string, target: string) =>
    new ApiError(409, 'TARGET_UNAVAILABLE', `cannot migrate to ${target}: ${reason}`, { target }),
  noCapacity: (id: string) =>
    new ApiError(409, 'NO_CAPACITY', `no ready node has room for instance ${id}; add capacity or enable a node`, { id }),
  unsupportedUpload: (contentType: string) =>
    new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `send the artifact bytes as application/octet-stream (got ${contentType || 'no content type'})`, {
      content_type: contentType,
    }),
  rebootNotOsImage: (kind: string) =>
    new ApiError(400, 'REBOOT_NOT_OS_IMAGE', `reboot=true is only for artifacts of kind os-image (an OS image booted from an A/B slot), not ${kind}`, { kind }),
  osImageAlwaysReboots: (kind: string) =>
    new ApiError(400, 'OS_IMAGE_ALWAYS_REBOOTS', `an ${kind} is installed by a reboot into the node's other A/B slot: leave reboot out (or true)`, { kind }),
  ociRefInvalid: (reason: string) => new ApiError(400, 'OCI_REF_INVALID', `${reason}; nothing was stored`, {}),
  ociRefNotOsImage: (kind: string) =>
    new ApiError(400, 'OCI_REF_NOT_OS_IMAGE', `only an os-image may be published by reference (ref=oci://…), not ${kind}; upload the file as the body instead`, { kind }),
  ociRefWithBody: () =>
    new ApiError(400, 'OCI_REF_WITH_BODY', 'send either ref (the image stays in its registry) or the file as the body, not both; nothing was stored'),
  artifactEmpty: () => new ApiError(400, 'ARTIFACT_EMPTY', 'the upload has no bytes; send the artifact file as the request body'),
  artifactTooLarge: (limit: number) =>
    new ApiError(413, 'ARTIFACT_TOO_LARGE', `artifacts are limited to ${limit} bytes; nothing was stored`, { limit }),
  digestMismatch: (expected: string, actual: string) =>
    new ApiError(400, 'DIGEST_MISMATCH', `the bytes received hash to ${actual}, not the sha256 ${expected} the request named; upload again`, {
      expected,
      actual,
    }),
  badPublicKey: (reason: string, cause?: unknown) =>
    new ApiError(400, 'BAD_PUBLIC_KEY', `public_key is not an ed25519 public key in PEM form (${reason}); send drydock-signing.pub`, {}, { cause }),
  signatureInvalid: (keyId: string) =>
    new ApiError(400, 'SIGNATURE_INVALID', `the signature does not match these bytes, component, version and kind under key ${keyId}; sign them again`, {
      key_id: keyId,
    }),
  artifactVersionExists: (component: string, version: string, existing: string, uploaded: string) =>
    new ApiError(
      409,
      'ARTIFACT_VERSION_EXISTS',
      `${component} ${version} was published already with other bytes; a version never changes, publish a new version`,
      { component, version, existing_sha256: existing, uploaded_sha256: uploaded },
    ),
  lifecycleTransition: (id: string, from: string, action: string, allowedFrom: readonly string[]) =>
    new ApiError(409, 'INVALID_LIFECYCLE_TRANSITION', `artifact ${id} is ${from}; ${action} applies only to ${allowedFrom.join(' or ')} artifacts`, {
      id,
      lifecycle: from,
      action,
      allowed_from: allowedFrom,
    }),
  artifactUnsigned: (id: string) =>
    new ApiError(409, 'ARTIFACT_UNSIGNED', `artifact ${id} is unsigned; only signed artifacts can be blessed, publish it with --key`, { id }),
  artifactInUse: (id: string, nodes: unknown[]) =>
    new ApiError(
      409,
      'ARTIFACT_IN_USE',
      `artifact ${id} is run, desired or kept for rollback by ${nodes.length} node(s); move them to another version first`,
      { id, nodes },
    ),
  artifactArchived: (component: string, version: string) =>
    new ApiError(409, 'ARTIFACT_ARCHIVED', `${component} ${version} is archived; pick a version that is not archived`, { component, version }),
  componentVersionNotFound: (component: string, version: string) =>
    new ApiError(404, 'ARTIFACT_NOT_FOUND', `no artifact ${component} ${version}; publish it with \`drydock artifacts publish\``, {
      component,
      version,
    }),
  nodeNotDrained: (hostname: string, component: string, activeInstances: number) =>
    new ApiError(
      409,
      'NODE_NOT_DRAINED',
      `${component} is disruptive and ${hostname} still hosts ${activeInstances} instance(s); drain the node first (or pass force)`,
      { hostname, component, active_instances: activeInstances },
    ),
} as const;
