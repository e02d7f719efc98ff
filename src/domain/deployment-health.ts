export type DeploymentHealthStatus = 'healthy' | 'degraded' | 'down';

/**
 * healthy: every replica serves; degraded: fewer, but at least the disruption budget
 * (min_available, and never zero); down: below the budget.
 */
export function deploymentHealth(replicas: number, minAvailable: number, healthyInstances: number): DeploymentHealthStatus {
  if (healthyInstances >= replicas) return 'healthy';
  if (healthyInstances >= Math.max(1, minAvailable)) return 'degraded';
  return 'down';
}
