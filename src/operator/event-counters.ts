import { Counter, Histogram, type Registry } from 'prom-client';
import { EVENT } from '../domain/events.js';
import type { Db } from '../store/db.js';
import { countedEventsBetween, lastEventId } from '../store/metrics-facts.js';

const COUNTED = [
  EVENT.rollout.node_completed,
  EVENT.rollout.node_failed,
  EVENT.rollout.circuit_breaker_tripped,
  EVENT.node.install_completed,
  EVENT.node.install_failed,
  EVENT.node.reverted,
  EVENT.node.drained,
  EVENT.node.drain_failed,
];

const INSTALL_PHASE: Record<string, string> = { [EVENT.node.install_completed]: 'done', [EVENT.node.install_failed]: 'failed', [EVENT.node.reverted]: 'reverted' };

/**
 * Counters read from the event log at scrape time, from a cursor taken when the operator
 * started: the log is the one record of what happened whichever replica did it (a rollout step
 * on the leader, an install report on whichever replica got the heartbeat), and appends commit
 * in id order, so reading (cursor, max(id)] counts every event once. Every replica counts the
 * whole log: aggregate across replicas with max, not sum (deploy/grafana/drydock.json does).
 */
export class EventCounters {
  private cursor: number | undefined;
  private reading: Promise<void> | undefined;
  private readonly nodeUpgrades: Counter;
  private readonly installs: Counter;
  private readonly breakerTrips: Counter;
  private readonly drainDuration: Histogram;

  constructor(
    private readonly db: Db,
    registry: Registry,
  ) {
    const read = () => this.read();
    this.nodeUpgrades = new Counter({
      name: 'drydock_node_upgrades_total',
      help: 'Nodes a rollout finished, by component and outcome (upgraded, failed, rolled_back), from the event log.',
      labelNames: ['component', 'outcome'],
      registers: [registry],
      collect: read,
    });
    this.installs = new Counter({
      name: 'drydock_installs_total',
      help: "Installs agents reported finished, by component and final phase (done, failed, reverted: the agent went back by itself).",
      labelNames: ['component', 'phase'],
      registers: [registry],
      collect: read,
    });
    this.breakerTrips = new Counter({
      name: 'drydock_breaker_trips_total',
      help: "Rollouts stopped by their circuit breaker, by component.",
      labelNames: ['component'],
      registers: [registry],
      collect: read,
    });
    // Drains run from seconds (nothing to move) to the default 10 min timeout.
    this.drainDuration = new Histogram({
      name: 'drydock_drain_duration_seconds',
      help: 'Time from a drain start to its end, by outcome (drained, failed: timed out).',
      labelNames: ['outcome'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600],
      registers: [registry],
      collect: read,
    });
    for (const outcome of ['drained', 'failed']) this.drainDuration.zero({ outcome });
  }

  /** Starts counting from the end of the log as it is now. */
  async start(): Promise<void> {
    this.cursor ??= await lastEventId(this.db);
  }

  /** Counts what was appended since the last read; concurrent collectors of one scrape share one read. */
  private read(): Promise<void> {
    this.reading ??= this.readNew().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async readNew(): Promise<void> {
    if (this.cursor === undefined) return this.start();
    const upTo = await lastEventId(this.db);
    if (upTo <= this.cursor) return;
    const events = await countedEventsBetween(this.db, this.cursor, upTo, COUNTED);
    this.cursor = upTo;
    for (const e of events) {
      const component = e.component ?? 'unknown';
      if (e.kind === EVENT.rollout.node_completed) this.nodeUpgrades.inc({ component, outcome: e.direction === 'rollback' ? 'rolled_back' : 'upgraded' });
      else if (e.kind === EVENT.rollout.node_failed) this.nodeUpgrades.inc({ component, outcome: 'failed' });
      else if (e.kind === EVENT.rollout.circuit_breaker_tripped) this.breakerTrips.inc({ component });
      else if (e.kind === EVENT.node.drained || e.kind === EVENT.node.drain_failed) {
        if (e.drain_seconds !== null) this.drainDuration.observe({ outcome: e.kind === EVENT.node.drained ? 'drained' : 'failed' }, e.drain_seconds);
      } else {
        const phase = INSTALL_PHASE[e.kind];
        if (phase) this.installs.inc({ component, phase });
      }
    }
  }
}
