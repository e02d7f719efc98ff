import { Counter, Gauge, Registry } from 'prom-client';
import { collectProcessMetrics } from '../process-metrics.js';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly heartbeatsSent = new Counter({
    name: 'drydock_agent_heartbeats_sent_total',
    help: 'Heartbeats acknowledged by the operator.',
    registers: [this.registry],
  });
  readonly heartbeatFailures = new Counter({
    name: 'drydock_agent_heartbeat_failures_total',
    help: 'Heartbeats that failed (operator unreachable or refusing).',
    registers: [this.registry],
  });
  readonly instanceRestarts = new Counter({
    name: 'drydock_agent_instance_restarts_total',
    help: 'Instances restarted after they exited or failed to start.',
    registers: [this.registry],
  });
  readonly instances = new Gauge({
    name: 'drydock_agent_instances',
    help: 'Instances hosted by this agent by status.',
    labelNames: ['status'],
    registers: [this.registry],
  });

  constructor() {
    collectProcessMetrics(this.registry);
  }
}
