// The dashboard (DESIGN.md §14): a hash-routed single page. Each page is one file in pages/.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, get, SESSION_ENDED, type Session, settled, useCsrfToken } from './api.js';
import { startLive, stopLive } from './live.js';
import { ApprovalsPage } from './pages/approvals.js';
import { ArtifactsPage } from './pages/artifacts.js';
import { DriftPage } from './pages/drift.js';
import { EventsPage } from './pages/events.js';
import { FleetPage } from './pages/fleet.js';
import { LoginPage } from './pages/login.js';
import { MigrationsPage } from './pages/migrations.js';
import { NodePage } from './pages/node.js';
import { OperatorsPage } from './pages/operators.js';
import { RolloutPage } from './pages/rollout.js';
import { RolloutsPage } from './pages/rollouts.js';

const NAV = [
  ['fleet', 'Fleet'],
  ['rollouts', 'Rollouts'],
  ['approvals', 'Approvals'],
  ['migrations', 'Migrations'],
  ['events', 'Events'],
  ['drift', 'Drift'],
  ['operators', 'Operators'],
  ['artifacts', 'Artifacts'],
] as const;

function useHash(): string[] {
  const read = () => (location.hash.replace(/^#\/?/, '') || 'fleet').split('/').map(decodeURIComponent);
  const [parts, setParts] = useState(read);
  useEffect(() => {
    const on = () => setParts(read());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return parts;
}

function Page({ parts, session }: { parts: string[]; session: Session }) {
  const [page, id] = parts;
  if (page === 'nodes' && id) return <NodePage id={id} session={session} />;
  if (page === 'rollouts' && id) return <RolloutPage id={id} session={session} />;
  if (page === 'rollouts') return <RolloutsPage />;
  if (page === 'approvals') return <ApprovalsPage session={session} />;
  if (page === 'migrations') return <MigrationsPage />;
  if (page === 'events') return <EventsPage />;
  if (page === 'drift') return <DriftPage />;
  if (page === 'operators') return <OperatorsPage />;
  if (page === 'artifacts') return <ArtifactsPage />;
  return <FleetPage />;
}

const LOGGED_OUT: Session = { authenticated: false, name: null, role: null, csrf_token: null, expires_at: null, open: false };

function App() {
  const [session, setSession] = useState<Session | undefined>(undefined);
  const parts = useHash();
  const adopt = (s: Session) => {
    useCsrfToken(s.csrf_token);
    setSession(s);
  };
  useEffect(() => {
    void get<Session>('/api/v1/session').then(adopt);
    const ended = () => adopt(LOGGED_OUT);
    window.addEventListener(SESSION_ENDED, ended);
    return () => window.removeEventListener(SESSION_ENDED, ended);
  }, []);
  useEffect(() => {
    if (!session?.authenticated) return;
    startLive();
    return stopLive;
  }, [session?.authenticated]);
  if (!session) return <p class="muted">Loading…</p>;
  if (!session.authenticated) return <LoginPage onLogin={adopt} />;
  // Pages and the event stream go first (they stop asking), then the session is ended: nothing
  // is sent with a session that no longer exists.
  const logout = async () => {
    const csrf = session.csrf_token;
    adopt(LOGGED_OUT);
    stopLive();
    // Requests already sent finish with the session they were sent with.
    await settled(2_000);
    useCsrfToken(csrf);
    await api('DELETE', '/api/v1/session');
    useCsrfToken(null);
  };
  return (
    <>
      <header>
        <strong class="brand">drydock</strong>
        <nav aria-label="pages">
          {NAV.map(([key, label]) => (
            <a href={`#/${key}`} aria-current={parts[0] === key ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="who">
          {session.name} ({session.role}){session.open ? ' — open operator, no tokens' : ''}
        </span>
        {!session.open && (
          <button type="button" onClick={logout}>
            Log out
          </button>
        )}
      </header>
      <main>
        <Page parts={parts} session={session} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
