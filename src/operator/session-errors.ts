import { ApiError } from './errors.js';

/** The dashboard-session part of the error catalog (DESIGN.md §9). */
export const sessionErrors = {
  csrfTokenInvalid: () =>
    new ApiError(
      403,
      'CSRF_TOKEN_INVALID',
      'a request made with the session cookie that changes state must carry the session\'s CSRF token in X-CSRF-Token; reload the dashboard (or use a bearer token)',
    ),
  loginTokenUnknown: () => new ApiError(401, 'UNAUTHENTICATED', 'this token is not known to the operator; log in with a token from its tokens file'),
  loginForPeopleOnly: () =>
    new ApiError(403, 'SESSION_FOR_PEOPLE_ONLY', 'agent tokens work only on the agent gateway; log in to the dashboard with a person\'s token'),
} as const;
