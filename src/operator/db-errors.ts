import { ApiError } from './errors.js';

/**
 * A lost database connection fails the one request it was serving, as a 503 a client can retry;
 * the pool opens a new session for the next request. Which errors count as "lost" is decided in
 * one place, `isConnectionLost` in src/store/db.ts.
 */
export function databaseUnavailable(cause: unknown): ApiError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ApiError(
    503,
    'DATABASE_UNAVAILABLE',
    'the database connection was lost while handling this request; retry in a moment (the operator reconnects by itself). ' +
      'A write in flight may or may not have been committed: read it back before repeating it',
    { reason, retryable: true },
    { cause },
  );
}
