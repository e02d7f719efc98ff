// Small builders for store tests: the shapes agents and the API would hand the store.
import type { ActualInstance, RegisterRequest } from '../../src/domain/protocol.js';
import type { Workload } from '../../src/domain/types.js';
import type { Db } from '../../src/store/db.js';
import type { HeartbeatRecord } from '../../src/store/nodes.js';

export const WORKLOAD: Workload = { command: 'sleep', args: ['3600'], env: { MODE: 'test' }, health_path: '/healthz' };

export function registerRequest(hostname: string, overrides: Partial<RegisterRequest> = {}): RegisterRequest {
  return {
    hostname,
    region: 'us-east',
    role: 'worker',
    max_instances: 4,
    agent_version: '1.0.0',
    protocol_version: 1,
    ...overrides,
  };
}

export function heartbeat(nodeId: string, instances: ActualInstance[] = [], overrides: Partial<HeartbeatRecord> = {}): HeartbeatRecord {
  return { nodeId, agentVersion: '1.0.0', protocolVersion: 1, components: { 'node-agent': '1.0.0' }, instances, ...overrides };
}

export const running = (id: string, port: number): ActualInstance => ({ id, status: 'running', healthy: true, pid: port + 10_000, port });
export const stopped = (id: string): ActualInstance => ({ id, status: 'stopped', healthy: false, pid: null, port: null });

/** The raw instance row, for asserting what the store wrote (views hide some columns). */
export async function instanceRow(db: Db, id: string) {
  const [row] = await db.query<{
    id: string;
    node_id: string;
    desired: string;
    status: string;
    healthy: boolean;
    published: boolean;
    replaces: string | null;
    restart_on_enable: boolean;
    pid: number | null;
    port: number | null;
    message: string | null;
  }>('SELECT id, node_id, desired, status, healthy, published, replaces, restart_on_enable, pid, port, message FROM instances WHERE id = $1', [id]);
  return row;
}
