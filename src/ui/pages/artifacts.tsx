// Artifacts and their lifecycle (published → blessed → promoted, archived), quarantine included.
import { get } from '../api.js';
import { ago, Badge, Loading, Table, useData } from '../kit.js';
import { useLive } from '../live.js';

interface ArtifactView {
  id: string;
  component: string;
  version: string;
  kind: string;
  sha256: string;
  size: number;
  key_id: string | null;
  disruptive: boolean;
  lifecycle: string;
  quarantined: boolean;
  created_by: string;
  created_at: string;
}

export function ArtifactsPage() {
  const artifacts = useData(() => get<ArtifactView[]>('/api/v1/artifacts'), []);
  useLive((e) => e.kind.startsWith('artifact.'), artifacts.reload);
  return (
    <section>
      <h1>Artifacts</h1>
      <Loading loaded={artifacts}>
        {() => (
          <Table
            rows={artifacts.data ?? []}
            rowKey={(a) => a.id}
            empty="No artifact is published."
            columns={[
              ['component', (a) => a.component],
              ['version', (a) => a.version],
              ['kind', (a) => a.kind],
              ['lifecycle', (a) => <Badge value={a.lifecycle} />],
              ['flags', (a) => [a.quarantined ? 'quarantined' : '', a.disruptive ? 'disruptive' : '', a.key_id ? `signed ${a.key_id}` : 'unsigned'].filter(Boolean).join(', ')],
              ['size', (a) => `${Math.round(a.size / 1024)} KiB`],
              ['sha256', (a) => <code title={a.sha256}>{a.sha256.slice(0, 12)}</code>],
              ['published', (a) => `${ago(a.created_at)} by ${a.created_by}`],
            ]}
          />
        )}
      </Loading>
    </section>
  );
}
