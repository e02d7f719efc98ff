// Operator replicas: version, schema, readiness and leadership (the same list as `drydock operators`).
import { get } from '../api.js';
import { ago, Badge, Loading, Table, useData, useEvery } from '../kit.js';

interface ReplicaView {
  id: string;
  hostname: string;
  region: string;
  url: string;
  version: string;
  knows_schema_version: number;
  database_schema_version: number;
  ready: boolean;
  reason: string;
  leader: boolean;
  live: boolean;
  started_at: string;
  last_seen_at: string;
}

export function OperatorsPage() {
  const replicas = useData(() => get<ReplicaView[]>('/api/v1/operators'), []);
  // Replicas refresh their row on a timer, not through events.
  useEvery(5_000, replicas.reload);
  return (
    <section>
      <h1>Operator replicas</h1>
      <Loading loaded={replicas}>
        {() => (
          <Table
            rows={replicas.data ?? []}
            rowKey={(r) => r.id}
            empty="No replica has registered."
            columns={[
              ['replica', (r) => `${r.hostname} (${r.region})`],
              ['url', (r) => r.url],
              ['version', (r) => r.version],
              ['schema', (r) => `knows ${r.knows_schema_version}, database ${r.database_schema_version}`],
              ['state', (r) => (r.live ? <Badge value={r.ready ? 'ready' : 'not_ready'} /> : <Badge value="gone" />)],
              ['leader', (r) => (r.leader ? 'leader' : '')],
              ['reason', (r) => r.reason],
              ['last seen', (r) => ago(r.last_seen_at)],
            ]}
          />
        )}
      </Loading>
    </section>
  );
}
