/** A rollout as GET /api/v1/rollouts/:id returns it (what `drydock rollout status` prints). */
export interface RolloutSummary {
  id: string;
  name: string;
  status: string;
  component: string;
  version: string;
  current_batch: number;
  batch_count: number;
  created_by: string;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  duration_s: number;
  counters?: { total: number; done: number; failed: number; in_flight: number; rolled_back: number; skipped: number };
}

export interface RolloutDetail extends RolloutSummary {
  spec: {
    strategy: {
      batch: { size?: number; percent?: number };
      /** Durations in the stored spec are milliseconds. */
      canary?: { nodes: number; soak: number };
      circuitBreaker: { maxConsecutiveFailures: number; maxFailurePercent?: number };
      pauseBetweenBatches: number;
    };
    approval: { required: boolean; distinctApprover: boolean };
  };
  next_window_open: string | null;
  /** When the next batch may start after a pause or the canary's soak (null: none waits). */
  next_batch_at: string | null;
  batches: { index: number; canary: boolean; nodes: { node_id: string; hostname: string; region: string; state: string; direction: string; last_error: string | null }[] }[];
  tasks: { node_id: string; hostname: string; batch: number; state: string; state_since: string; finished_at: string | null; last_error: string | null }[];
  plan: {
    drain_mode: string;
    estimated_duration_s: number;
    moves: { instance_id: string; deployment: string; batch: number; from_hostname: string; to_hostname: string | null }[];
  };
  preflight: { blocked?: boolean; checks?: { id: string; status: string; message: string; overridden?: boolean }[] } | null;
  approvals: { id: string; kind: string; status: string; options: string[]; reason: string | null; requested_by: string; decision: string | null; decided_by: string | null; edits: string[]; created_at: string }[];
}

/** Seconds left at the pace so far (done nodes per second since the first node started), or undefined. */
export function etaSeconds(r: RolloutDetail, now: number): number | undefined {
  const c = r.counters;
  if (!c || c.done === 0 || c.done >= c.total) return undefined;
  const started = Math.min(...r.tasks.filter((t) => t.state !== 'pending').map((t) => new Date(t.state_since).getTime()), now);
  const finished = r.tasks.filter((t) => t.finished_at).map((t) => new Date(t.finished_at as string).getTime());
  const elapsed = (Math.max(...finished, started) - started) / 1000;
  if (elapsed <= 0) return undefined;
  return Math.round(((c.total - c.done) * elapsed) / c.done);
}
