// Moves of instances (live migrations and make-before-break restarts) with their downtime.
import { EVENT } from '../../domain/events.js';
import { get } from '../api.js';
import { ago, Badge, Loading, Table, useData } from '../kit.js';
import { useLive } from '../live.js';

interface MigrationView {
  id: string;
  instance_id: string;
  deployment: string | null;
  source_hostname: string | null;
  target_hostname: string | null;
  mode: string;
  trigger: string;
  state: string;
  reason: string | null;
  started_at: string;
  total_ms: number | null;
  downtime_ms: number | null;
  downtime_limit_ms: number;
}

const INSTANCE_MOVES = new Set<string>([EVENT.instance.migration_started, EVENT.instance.migration_completed, EVENT.instance.migration_failed]);

const ms = (value: number | null) => (value === null ? '—' : `${value} ms`);

export function MigrationsPage() {
  const migrations = useData(() => get<MigrationView[]>('/api/v1/migrations?limit=200'), []);
  useLive((e) => e.kind.startsWith('migration.') || INSTANCE_MOVES.has(e.kind), migrations.reload);
  return (
    <section>
      <h1>Migrations</h1>
      <Loading loaded={migrations}>
        {() => (
          <Table
            rows={migrations.data ?? []}
            rowKey={(m) => m.id}
            empty="No instance has moved yet."
            columns={[
              ['instance', (m) => m.instance_id],
              ['deployment', (m) => m.deployment ?? ''],
              ['from → to', (m) => `${m.source_hostname ?? '?'} → ${m.target_hostname ?? '?'}`],
              ['mode', (m) => `${m.mode} (${m.trigger})`],
              ['state', (m) => <Badge value={m.state} />],
              ['downtime', (m) => `${ms(m.downtime_ms)} (limit ${m.downtime_limit_ms} ms)`],
              ['duration', (m) => ms(m.total_ms)],
              ['started', (m) => ago(m.started_at)],
              ['reason', (m) => m.reason ?? ''],
            ]}
          />
        )}
      </Loading>
    </section>
  );
}
