import type { ServerResponse } from 'node:http';
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
 */
export const edgeErrors = {
  unknownDeployment: (deployment: string): EdgeError => ({
    status: 404,
    code: 'UNKNOWN_DEPLOYMENT',
    message: `no deployment ${deployment}; see /endpoints on the edge`,
    details: { deployment },
  }),
  noHealthyEndpoint: (deployment: string): EdgeError => ({
    status: 503,
    code: 'NO_HEALTHY_ENDPOINT',
    message: `deployment ${deployment} has no healthy endpoint right now; retry later, and see its health on the operator`,
    details: { deployment },
  }),
  /** The last attempt never reached an endpoint: any request may be sent again as it is. */
  upstreamUnreachable: (deployment: string, attempts: number): EdgeError => ({
    status: 502,
    code: 'UPSTREAM_UNREACHABLE',
    message: `deployment ${deployment}: no endpoint accepted the connection, the request was not delivered; retry later`,
    details: { deployment, reason: 'connect', attempts },
  }),
  /** An endpoint may have taken the request and gave no response. */
  upstreamNoResponse: (deployment: string, reason: FailureReason, attempts: number, replayable: boolean): EdgeError => ({
    status: 502,
    code: 'UPSTREAM_NO_RESPONSE',
    message: replayable
      ? `deployment ${deployment}: ${attempts} endpoint(s) took the request and failed before answering; it is idempotent, retry it later`
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

export function sendError(res: ServerResponse, error: EdgeError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(error.status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ error: { code: error.code, message: error.message, details: error.details } })}\n`);
}
