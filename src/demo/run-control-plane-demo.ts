// `drydock demo --control-plane`: the operator-upgrade runbook (001) as one rollout. Control-plane
// agents in each region supervise real operator replicas on a PostgreSQL server, behind the edge;
// operator 1.0.0 → 2.0.0 rolls through them with an expand and a contract migration while API
// traffic goes through the edge, and the report says what happened.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { ControlPlaneFleet } from './control-plane-fleet.js';
import { apiTraffic, watchReplicas } from './control-plane-watch.js';
import { waitFor } from './local-fleet.js';

export interface ControlPlaneDemoOptions {
  bin: string;
  dir: string;
  /** A PostgreSQL server URL (its database is only used to create and drop the demo's own). */
  databaseUrl: string | undefined;
  regions: string[];
  perRegion: number;
  reportFile?: string | undefined;
  say?: (line: string) => void;
}

const LOCAL_SERVER = 'postgres://postgres@127.0.0.1:5432/postgres';

interface EventRow {
  id: number;
  kind: string;
  at: string;
  data: Record<string, unknown>;
}

export async function runControlPlaneDemo(options: ControlPlaneDemoOptions): Promise<Record<string, unknown>> {
  const say = options.say ?? ((line: string) => process.stdout.write(`${line}\n`));
  const serverUrl = options.databaseUrl ?? LOCAL_SERVER;
  say(`PostgreSQL: ${options.databaseUrl ? 'DATABASE_URL' : 'the local server'} (${redact(serverUrl)}); the demo creates a database of its own there and drops it at the end`);
  const name = `drydock_cp_demo_${Date.now()}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`the control-plane demo needs a PostgreSQL server: ${redact(serverUrl)} does not answer (${(error as Error).message}); set DATABASE_URL`);
  }
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const dir = resolve(options.dir, `control-plane-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  const cp = new ControlPlaneFleet({ bin: options.bin, dir, databaseUrl: url.toString(), regions: options.regions, perRegion: options.perRegion });
  try {
    await cp.prepare();
    say(`starting ${options.regions.length} regions × ${options.perRegion} control-plane agents, each running an operator replica 1.0.0, behind drydock edge…`);
    await cp.start();
    say(`✓ ${cp.nodes.length} replicas ready; API and agents go through ${cp.apiUrl}`);
    for (const build of ['v1', 'v2'] as const) await cp.publish(build);
    say('✓ published operator 1.0.0 and 2.0.0 (2.0.0 brings one expand and one contract migration), signed and blessed');

    const watch = watchReplicas(cp);
    const traffic = apiTraffic(`${cp.apiUrl}/api/v1/nodes`);
    const started = Date.now();
    const rollout = await cp.client().post<{ id: string }>('/api/v1/rollouts', {
      name: 'control-plane-2-0-0',
      target: { component: 'operator', version: '2.0.0' },
      selector: { role: 'control-plane' },
      strategy: { batch: { size: options.regions.length }, minAvailablePerRegion: Math.max(1, options.perRegion - 1), health: { minHealthyTime: '2s' } },
    });
    say(`rollout ${rollout.id}: operator → 2.0.0, at most one replica per region at a time`);
    const seen = new Set<number>();
    const final = await waitFor(
      'the control-plane rollout to end',
      async () => {
        const events = await cp.client().get<EventRow[]>(`/api/v1/events?rollout_id=${rollout.id}&limit=1000`).catch(() => [] as EventRow[]);
        for (const e of events.sort((a, b) => a.id - b.id)) {
          if (seen.has(e.id)) continue;
          seen.add(e.id);
          say(`  ${e.at.slice(11, 23)}  ${e.kind}${describe(e)}`);
        }
        const r = await cp.client().get<{ status: string }>(`/api/v1/rollouts/${rollout.id}`).catch(() => undefined);
        return r && ['completed', 'failed', 'awaiting_decision', 'aborted'].includes(r.status) ? r : undefined;
      },
      600_000,
      500,
    );
    await traffic.stop();
    await watch.stop();
    const replicas = await cp.replicas();
    const seconds = (Date.now() - started) / 1000;
    const report = {
      status: final.status,
      seconds: Math.round(seconds * 10) / 10,
      replicas: replicas.filter((r) => r.live).map((r) => ({ hostname: r.hostname, region: r.region, version: r.version, ready: r.ready, leader: r.leader })),
      api: { sent: traffic.stats.sent, failed: traffic.stats.failed, per_second: Math.round((traffic.stats.sent / seconds) * 10) / 10, errors: traffic.stats.errors.slice(0, 5) },
      min_ready_per_region: Object.fromEntries(watch.minReady),
      readiness_samples: watch.samples,
      leaders: watch.leaders,
    };
    say('');
    say(`rollout ${final.status} in ${report.seconds} s`);
    say(`API through the edge: ${report.api.sent} requests (${report.api.per_second}/s), ${report.api.failed} failed`);
    say(`fewest ready replicas per region (sampled every 250 ms, ${watch.samples} samples): ${[...watch.minReady].map(([r, n]) => `${r} ${n}`).join(', ')}`);
    say(`leaders over the run: ${watch.leaders.join(' → ')}`);
    say(`replicas now: ${[...new Set(report.replicas.map((r) => r.version))].join(', ')} (${report.replicas.filter((r) => r.ready).length} ready)`);
    if (options.reportFile) writeFileSync(options.reportFile, `${JSON.stringify(report, null, 2)}\n`);
    return report;
  } finally {
    await cp.stop().catch(() => []);
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end().catch(() => {});
    say(`stopped; logs in ${join(dir)}`);
  }
}

function describe(e: EventRow): string {
  const d = e.data;
  if (typeof d.hostname === 'string') return ` ${d.hostname}${typeof d.reason === 'string' ? `: ${d.reason}` : ''}`;
  if (Array.isArray(d.applied)) return ` ${d.applied.join(', ') || '(nothing new)'}`;
  if (Array.isArray(d.nodes)) return ` ${d.nodes.join(', ')}`;
  if (typeof d.reason === 'string') return `: ${d.reason}`;
  return '';
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}
