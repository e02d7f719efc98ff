import { collectDefaultMetrics, type Registry } from 'prom-client';

// prom-client names these gauges *_total, which `promtool check metrics` rejects (only
// counters may end in _total); their per-type twins (nodejs_active_handles{type}, …) stay.
const NOT_PROMTOOL_CLEAN = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * Process metrics (CPU, memory, event loop lag, GC) under their standard names
 * (process_cpu_seconds_total, nodejs_heap_size_used_bytes, …), as stock Node.js dashboards
 * expect them: each drydock process is its own scrape target, so no prefix is needed.
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of NOT_PROMTOOL_CLEAN) registry.removeSingleMetric(name);
}
