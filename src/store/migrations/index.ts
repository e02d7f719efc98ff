// Every migration the binary knows, in order. Files are named NNNN_name.phase.sql; `pre`
// migrations expand the schema (safe for the previous binary), `post` ones contract it
// after a rollout and are applied only on request (`drydock migrate up --phase post`).
import fleet from './0001_fleet.pre.sql';
import artifacts from './0002_artifacts.pre.sql';
import rollouts from './0003_rollouts.pre.sql';
import nodeCredentials from './0004_node_credentials.pre.sql';
import policiesQuarantine from './0005_policies_quarantine.pre.sql';
import fleetGuards from './0006_fleet_guards.pre.sql';
import installRetryable from './0007_install_retryable.pre.sql';
import instanceMigrations from './0008_instance_migrations.pre.sql';
import operatorReplicas from './0009_operator_replicas.pre.sql';
import instanceReports from './0010_instance_reports.pre.sql';
import regionGates from './0011_region_gates.pre.sql';
import observedGeneration from './0012_observed_generation.pre.sql';
import hookRuns from './0013_hook_runs.pre.sql';
import uiSessions from './0014_ui_sessions.pre.sql';
import webhooks from './0015_webhooks.pre.sql';
import controlPlaneRollouts from './0016_control_plane_rollouts.pre.sql';
import drainModePrunedVersions from './0017_drain_mode_pruned_versions.pre.sql';
import blueGreen from './0018_blue_green.pre.sql';
import applyAndDecommission from './0019_apply_and_decommission.pre.sql';
import osImageSlots from './0021_os_image_slots.pre.sql';
import rolloutTargets from './0022_rollout_targets.pre.sql';
import taskStaging from './0023_task_staging.pre.sql';
import instanceReportSource from './0026_instance_report_source.pre.sql';
import artifactOciRef from './0027_artifact_oci_ref.pre.sql';

export interface Migration {
  version: number;
  name: string;
  phase: 'pre' | 'post';
  sql: string;
}

function migration(file: string, sql: string): Migration {
  const match = /^(\d{4})_([a-z0-9_]+)\.(pre|post)\.sql$/.exec(file);
  if (!match) throw new Error(`bad migration file name ${file}`);
  return { version: Number(match[1]), name: match[2] as string, phase: match[3] as 'pre' | 'post', sql };
}

export const MIGRATIONS: readonly Migration[] = [
  migration('0001_fleet.pre.sql', fleet),
  migration('0002_artifacts.pre.sql', artifacts),
  migration('0003_rollouts.pre.sql', rollouts),
  migration('0004_node_credentials.pre.sql', nodeCredentials),
  migration('0005_policies_quarantine.pre.sql', policiesQuarantine),
  migration('0006_fleet_guards.pre.sql', fleetGuards),
  migration('0007_install_retryable.pre.sql', installRetryable),
  migration('0008_instance_migrations.pre.sql', instanceMigrations),
  migration('0009_operator_replicas.pre.sql', operatorReplicas),
  migration('0010_instance_reports.pre.sql', instanceReports),
  migration('0011_region_gates.pre.sql', regionGates),
  migration('0012_observed_generation.pre.sql', observedGeneration),
  migration('0013_hook_runs.pre.sql', hookRuns),
  migration('0014_ui_sessions.pre.sql', uiSessions),
  migration('0015_webhooks.pre.sql', webhooks),
  migration('0016_control_plane_rollouts.pre.sql', controlPlaneRollouts),
  migration('0017_drain_mode_pruned_versions.pre.sql', drainModePrunedVersions),
  migration('0018_blue_green.pre.sql', blueGreen),
  migration('0019_apply_and_decommission.pre.sql', applyAndDecommission),
  migration('0021_os_image_slots.pre.sql', osImageSlots),
  migration('0022_rollout_targets.pre.sql', rolloutTargets),
  migration('0023_task_staging.pre.sql', taskStaging),
  migration('0026_instance_report_source.pre.sql', instanceReportSource),
  migration('0027_artifact_oci_ref.pre.sql', artifactOciRef),
  ...drillMigrations(),
];

/**
 * An upgrade drill's build (src/demo/stamp.ts) carries migrations a newer release would bring,
 * on a line of its own at the top of the bundle; a normal build has none. They follow the
 * built-in ones and must be numbered after them.
 */
function drillMigrations(): Migration[] {
  const drill = (globalThis as { __drydock_drill_migrations?: { file: string; sql: string }[] }).__drydock_drill_migrations ?? [];
  return drill.map((m) => migration(m.file, m.sql));
}

/**
 * This build runs unharmed beside a newer build's expand (`pre`) migrations: it never depends on
 * a table or column being absent, and reads named columns only. Every drydock build keeps that
 * rule; a drill build that cannot (src/demo/stamp.ts `intolerantOfExpand`) says so, and a
 * control-plane rollout then refuses to expand while such a replica is live.
 */
export const BUILD_TOLERATES_EXPAND = (globalThis as { __drydock_intolerant_of_expand?: boolean }).__drydock_intolerant_of_expand !== true;
