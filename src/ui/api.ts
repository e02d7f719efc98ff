// The dashboard's one door to the operator: same-origin fetch with the session cookie, and the
// session's CSRF token on every request that changes state (DESIGN.md §9).

export interface Session {
  authenticated: boolean;
  name: string | null;
  role: string | null;
  csrf_token: string | null;
  expires_at: string | null;
  open: boolean;
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Dispatched on window when the operator answers 401: the session is gone. */
export const SESSION_ENDED = 'drydock:session-ended';

let csrfToken: string | null = null;
export function useCsrfToken(token: string | null): void {
  csrfToken = token;
}

let inFlight = 0;

/** Resolves once no API call is in flight (or after `maxMs`): logout waits for it before ending the session. */
export async function settled(maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  inFlight++;
  try {
    return await call<T>(method, path, body);
  } finally {
    inFlight--;
  }
}

/**
 * The URL of an API path (`/api/v1/…`), relative to the page: the dashboard is always at
 * `<operator>/ui/`, so `../api/v1/…` reaches the operator that served it, at the root of its host
 * or under a prefix such as the edge's `/d/drydock/`.
 */
export function apiUrl(path: string): string {
  return path.startsWith('/') ? `..${path}` : path;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const response = await fetch(apiUrl(path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (response.status === 204) return undefined as T;
  const data = (await response.json().catch(() => null)) as { error?: { code: string; message: string } } | null;
  // The session ended (logout elsewhere, expiry): the app goes back to its login form.
  if (response.status === 401 && path !== '/api/v1/session') window.dispatchEvent(new Event(SESSION_ENDED));
  if (!response.ok) throw new ApiFailure(response.status, data?.error?.code ?? `HTTP_${response.status}`, data?.error?.message ?? response.statusText);
  return data as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body ?? {});

const ROLES = ['viewer', 'operator', 'approver', 'admin'];
/** Whether the session's role reaches `needed`; the server checks again on every request. */
export function can(session: Session, needed: 'operator' | 'approver' | 'admin'): boolean {
  return ROLES.indexOf(session.role ?? '') >= ROLES.indexOf(needed);
}

/** `?a=1&b=2` from the set values only. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
