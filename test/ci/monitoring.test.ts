// deploy/prometheus/alerts.yaml and deploy/grafana/drydock.json, checked against the tools and
// the real thing: promtool checks and unit-tests the rules; the dashboard is validated against
// the fields Grafana's dashboard model requires, its queries are parsed by promtool, and every
// metric a rule or a panel reads must be in the /metrics of a real operator process.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, type LocalFleet } from '../../src/demo/local-fleet.js';
import { startTestFleet } from '../support/processes.js';

const ROOT = resolve(import.meta.dirname, '../..');
const RULES = join(ROOT, 'deploy/prometheus/alerts.yaml');
const RULE_TESTS = join(ROOT, 'deploy/prometheus/alerts.test.yaml');
const DASHBOARD = join(ROOT, 'deploy/grafana/drydock.json');

function promtool(args: string[]) {
  const result = spawnSync('promtool', args, { encoding: 'utf8' });
  if (result.error) throw new Error(`promtool is not installed (.ci/run installs it): ${result.error.message}`);
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

// The parts of Grafana's dashboard model (schemaVersion 39) a dashboard needs to load and draw:
// panels placed on the 24-column grid, each query a Prometheus target with a refId and an expr.
const GridPos = z
  .object({ x: z.number().int().min(0).max(23), y: z.number().int().min(0), w: z.number().int().min(1).max(24), h: z.number().int().min(1) })
  .refine((g) => g.x + g.w <= 24, 'a panel must fit in the 24 grid columns');
const Datasource = z.object({ type: z.literal('prometheus'), uid: z.string().min(1) });
const Target = z.object({ refId: z.string().regex(/^[A-Z]$/), expr: z.string().min(1), datasource: Datasource, legendFormat: z.string().optional() });
const RowPanel = z.object({ id: z.number().int().positive(), type: z.literal('row'), title: z.string().min(1), gridPos: GridPos, collapsed: z.boolean(), panels: z.array(z.unknown()) });
const VizPanel = z.object({
  id: z.number().int().positive(),
  type: z.enum(['timeseries', 'stat', 'gauge', 'bargauge', 'table', 'heatmap']),
  title: z.string().min(1),
  gridPos: GridPos,
  datasource: Datasource,
  targets: z.array(Target).min(1),
  fieldConfig: z.object({ defaults: z.record(z.string(), z.unknown()), overrides: z.array(z.unknown()) }),
  options: z.record(z.string(), z.unknown()),
});
const Dashboard = z.object({
  title: z.string().min(1),
  uid: z.string().min(1).max(40),
  schemaVersion: z.number().int().min(36),
  time: z.object({ from: z.string(), to: z.string() }),
  templating: z.object({ list: z.array(z.object({ name: z.string(), type: z.string() })) }),
  annotations: z.object({ list: z.array(z.unknown()) }),
  panels: z.array(z.union([RowPanel, VizPanel])).min(1),
});
type Viz = z.infer<typeof VizPanel>;

/** The metric names an expression reads (a histogram's _bucket/_sum/_count are its family). */
function metricsIn(expr: string): string[] {
  const names = expr.match(/\b(?:drydock|process|nodejs)_[a-z0-9_]+\b/g) ?? [];
  return [...new Set(names)];
}

function exported(metrics: string, name: string): boolean {
  const family = name.replace(/_(bucket|sum|count)$/, '');
  return metrics.includes(`# TYPE ${name} `) || new RegExp(`^# TYPE ${family} histogram$`, 'm').test(metrics);
}

describe('monitoring config: alert rules and the Grafana dashboard', () => {
  let fleet: LocalFleet;
  let metrics = '';
  let dir = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'drydock-monitoring-'));
    fleet = await startTestFleet('monitoring');
    metrics = await (await fetch(`${fleet.operatorUrl}/metrics`)).text();
  });
  afterAll(async () => {
    await fleet?.stop();
    rmSync(dir, { recursive: true, force: true });
    expect([...(fleet?.spawnedPids ?? [])].filter(isAlive)).toEqual([]);
  });

  it('promtool check rules accepts alerts.yaml', () => {
    const check = promtool(['check', 'rules', RULES]);
    expect(check.output).toContain('SUCCESS: 7 rules found');
    expect(check.code).toBe(0);
  });

  it('promtool test rules passes the alert unit tests', () => {
    const run = promtool(['test', 'rules', RULE_TESTS]);
    expect(run.output).toMatch(/SUCCESS/);
    expect(run.code).toBe(0);
  });

  it('every metric an alert reads is exported by a real operator', () => {
    const rules = parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const read = rules.groups.flatMap((g) => g.rules.flatMap((r) => metricsIn(r.expr).map((m) => `${r.alert}: ${m}`)));
    expect(read.length).toBeGreaterThanOrEqual(7);
    expect(read.filter((entry) => !exported(metrics, entry.split(': ')[1] as string))).toEqual([]);
  });

  it('the dashboard has the fields Grafana requires, on a grid without overlaps', () => {
    const parsed = Dashboard.safeParse(JSON.parse(readFileSync(DASHBOARD, 'utf8')));
    expect(parsed.error?.issues ?? []).toEqual([]);
    const dashboard = parsed.data as z.infer<typeof Dashboard>;
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Map<string, string>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos;
      for (let col = x; col < x + w; col++) {
        for (let row = y; row < y + h; row++) {
          const key = `${col},${row}`;
          expect(cells.get(key), `${panel.title} overlaps another panel at ${key}`).toBeUndefined();
          cells.set(key, panel.title);
        }
      }
    }
    const viz = dashboard.panels.filter((p): p is Viz => p.type !== 'row');
    for (const panel of viz) expect(new Set(panel.targets.map((t) => t.refId)).size, panel.title).toBe(panel.targets.length);
    // The four views the dashboard is for.
    expect(dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title)).toEqual(expect.arrayContaining(['Fleet', 'Rollouts', 'Drains and migrations', 'API']));
  });

  it('every panel query parses as PromQL and reads only metrics a real operator exports', () => {
    const dashboard = Dashboard.parse(JSON.parse(readFileSync(DASHBOARD, 'utf8')));
    const targets = dashboard.panels.filter((p): p is Viz => p.type !== 'row').flatMap((p) => p.targets.map((t) => ({ panel: p.title, ...t })));
    expect(targets.length).toBeGreaterThan(30);
    // Grafana's variables become what they stand for, then each query is a recording rule that
    // `promtool check rules` parses.
    const promql = (expr: string) => expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.*');
    const file = join(dir, 'dashboard-queries.yaml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: targets.map((t, i) => ({ record: `dashboard:query_${i}`, expr: promql(t.expr) })) }] }));
    const check = promtool(['check', 'rules', file]);
    expect(check.output).toContain(`SUCCESS: ${targets.length} rules found`);
    expect(check.code).toBe(0);
    const missing = targets.flatMap((t) => metricsIn(t.expr).filter((m) => !exported(metrics, m)).map((m) => `${t.panel}: ${m}`));
    expect(missing).toEqual([]);
  });
});
