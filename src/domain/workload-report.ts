// What a workload says about its own data (issue 12, item 4): its volume's replica health and a
// backup, snapshot or restore running on it. Preflight's volume-last-replica and
// backup-in-progress read it. A process workload writes it to the file its agent names in
// DRYDOCK_STATUS_FILE; a VM guest answers it in its /status JSON. The agent sends it in the
// instance's heartbeat entry. Field names and bounds are those of the PUT …/volume and
// PUT …/activity routes, so one shape serves both ways in.
import { z } from 'zod';

export const ACTIVITY_KINDS = ['backup', 'snapshot', 'restore'] as const;
export type ActivityKind = (typeof ACTIVITY_KINDS)[number];

/** Replicas of a volume: at most 1000, as the PUT route takes. */
export const VOLUME_MAX_REPLICAS = 1000;

export const VolumeSchema = z
  .object({
    replicas: z.number().int().min(1).max(VOLUME_MAX_REPLICAS).describe('replicas the volume has'),
    healthy_replicas: z.number().int().min(0).max(VOLUME_MAX_REPLICAS).describe('of them, healthy now'),
  })
  .strict()
  .refine((v) => v.healthy_replicas <= v.replicas, { message: 'healthy_replicas cannot exceed replicas', path: ['healthy_replicas'] });
export type Volume = z.infer<typeof VolumeSchema>;

export const ActivitySchema = z.enum(ACTIVITY_KINDS);

/** A workload's report; an absent field: nothing to report (no volume, nothing running). */
export interface WorkloadReport {
  volume?: Volume;
  activity?: ActivityKind;
}

/**
 * Most bytes of a status file (or a guest's /status answer) the agent reads: 64 KiB. The two
 * fields take under 100 bytes; the rest is room for whatever else a workload keeps there.
 */
export const WORKLOAD_STATUS_MAX_BYTES = 64 * 1024;

/** The outcome of reading a workload's status: a report, or why there is none to trust. */
export type ParsedWorkloadStatus = { ok: true; report: WorkloadReport } | { ok: false; problem: string };

/**
 * Reads `volume` and `activity` from a workload's status text. Other top-level fields are
 * ignored (a VM guest's /status carries its boot id and counters beside them); `null` or absent
 * means none. A text that is not a JSON object, or whose `volume` or `activity` does not match
 * the PUT routes' shape, is refused whole: half a report could clear a backup that still runs.
 */
export function parseWorkloadStatus(text: string): ParsedWorkloadStatus {
  if (text.length > WORKLOAD_STATUS_MAX_BYTES) return { ok: false, problem: `larger than ${WORKLOAD_STATUS_MAX_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `not JSON (${(error as Error).message})` };
  }
  return readWorkloadStatus(json);
}

/** As parseWorkloadStatus, for JSON already parsed. */
export function readWorkloadStatus(json: unknown): ParsedWorkloadStatus {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, problem: 'not a JSON object' };
  const fields = json as Record<string, unknown>;
  const report: WorkloadReport = {};
  if (fields.volume !== undefined && fields.volume !== null) {
    const volume = VolumeSchema.safeParse(fields.volume);
    if (!volume.success) return { ok: false, problem: `volume: ${describe(volume.error)}` };
    report.volume = volume.data;
  }
  if (fields.activity !== undefined && fields.activity !== null) {
    const activity = ActivitySchema.safeParse(fields.activity);
    if (!activity.success) return { ok: false, problem: `activity: one of ${ACTIVITY_KINDS.join(', ')} or null` };
    report.activity = activity.data;
  }
  return { ok: true, report };
}

function describe(error: z.ZodError): string {
  return error.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** Two reports say the same (a report that did not change does not wake a heartbeat). */
export function sameWorkloadReport(a: WorkloadReport | undefined, b: WorkloadReport | undefined): boolean {
  return (
    a?.activity === b?.activity &&
    a?.volume?.replicas === b?.volume?.replicas &&
    a?.volume?.healthy_replicas === b?.volume?.healthy_replicas
  );
}
