import type { ServerResponse } from 'node:http';
import { formatDuration } from '../domain/duration.js';
import type { FailureReason } from './forward-attempt.js';

/** An error the edge answers itself, rendered like the operator's: `{"error": {"code", "message", "details"}}`. */
export interface EdgeError {
  status: number;
  code: string;
  message: string;
  details: Record<string, unknown>;
}

/**
 * The edge's error catalog: stable codes, and messages that say what to do next. Messages and
 * details hold no upstream error text (it varies with the platform and the moment of the failure;
 * the edge logs it instead), so the same failure always gives the same body.
 *
 * `holdMs` is the edge's hold (EdgeOptions.holdMs) when it held the request that long for an
 * endpoint in vain, 0 when it answered without holding: the configured bound, not the time
 * measured, for the same reason. The status and code are the same either way.
 */
export const edgeErrors = {
  unknownDeployment: (deployment: string): EdgeError => ({
    status: 404,
    code: 'UNKNOWN_DEPLOYMENT',
    message: `no deployment ${deployment}; see /endpoints on the edge`,
    details: { deployment },
  }),
  noHealthyEndpoint: (deployment: string, holdMs = 0): EdgeError => ({
    status: 503,
    code: 'NO_HEALTHY_ENDPOINT',
    message: `deployment ${deployment} has no healthy endpoint right now${heldInVain(holdMs, 'none')}; retry later, and see its health on the operator`,
    details: { deployment },
  }),
  /** The last attempt never reached an endpoint: any request may be sent again as it is. */
  upstreamUnreachable: (deployment: string, attempts: number, holdMs = 0): EdgeError => ({
    status: 502,
    code: 'UPSTREAM_UNREACHABLE',
    message: `deployment ${deployment}: no endpoint accepted the connection${heldInVain(holdMs, 'no other')}, the request was not delivered; retry later`,
    details: { deployment, reason: 'connect', attempts },
  }),
  /** An endpoint may have taken the request and gave no response. */
  upstreamNoResponse: (deployment: string, reason: FailureReason, attempts: number, replayable: boolean, holdMs = 0): EdgeError => ({
    status: 502,
    code: 'UPSTREAM_NO_RESPONSE',
    message: replayable
      ? `deployment ${deployment}: ${attempts} endpoint(s) took the request and failed before answering${heldInVain(holdMs, 'no other')}; it is idempotent, retry it later`
      : `deployment ${deployment}: the endpoint took the request and failed before answering, and the edge has not sent it again because it is not idempotent; check whether it took effect before you retry`,
    details: { deployment, reason, attempts },
  }),
  routeNotFound: (): EdgeError => ({
    status: 404,
    code: 'ROUTE_NOT_FOUND',
    message: 'use Host: <deployment>.localhost or /d/<deployment>/…; the edge itself serves /health, /metrics, /endpoints',
    details: {},
  }),
};

/** What the message adds when the edge held the request in vain (`… while the edge held the request for 3s`); '' when it did not hold it. */
function heldInVain(holdMs: number, which: 'none' | 'no other'): string {
  if (holdMs <= 0) return '';
  return which === 'none'
    ? ` (none appeared while the edge held the request for ${formatDuration(holdMs)})`
    : `, and no other endpoint appeared while the edge held the request for ${formatDuration(holdMs)}`;
}

export function sendError(res: ServerResponse, error: EdgeError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(error.status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ error: { code: error.code, message: error.message, details: error.details } })}\n`);
}
