import { collectDefaultMetrics, type Registry } from 'prom-client';

// prom-client names these gauges *_total, which `promtool check metrics` rejects (only
// counters may end in _total); the handle/request counts add little, so they are dropped.
const NOT_PROMTOOL_CLEAN = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Process metrics (CPU, memory, event loop lag, GC) under `prefix`, promtool-clean. */
export function collectProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of NOT_PROMTOOL_CLEAN) registry.removeSingleMetric(`${prefix}${name}`);
}
