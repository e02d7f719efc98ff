import { useState } from 'preact/hooks';
import { ApiFailure, post, type Session } from '../api.js';

/** Trades a token for a session cookie; the token itself is not kept by the page. */
export function LoginPage({ onLogin }: { onLogin: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      onLogin(await post<Session>('/api/v1/session', { token }));
    } catch (failure) {
      setError(failure instanceof ApiFailure ? failure.message : String(failure));
    }
  };
  return (
    <main class="login">
      <h1>drydock</h1>
      <form onSubmit={submit}>
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        <button type="submit">Log in</button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
      <p class="muted">The token is traded for a session cookie (8 hours); the page does not keep it.</p>
    </main>
  );
}
