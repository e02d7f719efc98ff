import { describe, expect, it } from 'vitest';
import { ActualInstanceSchema } from '../../src/domain/protocol.js';
import { parseWorkloadStatus, readWorkloadStatus, sameWorkloadReport, WORKLOAD_STATUS_MAX_BYTES } from '../../src/domain/workload-report.js';

describe('a workload status (volume, activity) as an agent reads it', () => {
  it('reads the PUT routes’ shapes and ignores other fields', () => {
    expect(parseWorkloadStatus('{"volume": {"replicas": 3, "healthy_replicas": 1}, "activity": "backup"}')).toEqual({
      ok: true,
      report: { volume: { replicas: 3, healthy_replicas: 1 }, activity: 'backup' },
    });
    // A VM guest's /status carries more than these two.
    expect(readWorkloadStatus({ boot_id: 'b', uptime_s: 1, requests: 3, activity: 'snapshot' })).toEqual({ ok: true, report: { activity: 'snapshot' } });
    expect(parseWorkloadStatus('{}')).toEqual({ ok: true, report: {} });
    expect(parseWorkloadStatus('{"volume": null, "activity": null}')).toEqual({ ok: true, report: {} });
  });

  it('refuses the whole status when it is not JSON, too large, or a field is out of shape', () => {
    for (const text of ['', '{"volume":', '[1]', 'null', '"backup"']) expect(parseWorkloadStatus(text).ok).toBe(false);
    expect(parseWorkloadStatus(`{"pad": "${'x'.repeat(WORKLOAD_STATUS_MAX_BYTES)}"}`)).toMatchObject({ ok: false, problem: expect.stringContaining('larger than') });
    const bad = [
      { volume: { replicas: 2, healthy_replicas: 3 }, activity: 'backup' },
      { volume: { replicas: 0, healthy_replicas: 0 } },
      { volume: { replicas: 3 } },
      { volume: { replicas: 3, healthy_replicas: 1, extra: true } },
      { volume: { replicas: 3.5, healthy_replicas: 1 } },
      { volume: { replicas: 1001, healthy_replicas: 1 } },
      { volume: { replicas_total: 3, replicas_healthy: 1 } },
      { activity: 'defrag', volume: { replicas: 3, healthy_replicas: 3 } },
      { activity: { kind: 'backup' } },
    ];
    for (const json of bad) expect(readWorkloadStatus(json), JSON.stringify(json)).toMatchObject({ ok: false, problem: expect.any(String) });
    expect(readWorkloadStatus({ volume: { replicas: 2, healthy_replicas: 3 } })).toMatchObject({ problem: expect.stringContaining('healthy_replicas cannot exceed replicas') });
  });

  it('tells an unchanged report from a changed one', () => {
    expect(sameWorkloadReport(undefined, {})).toBe(true);
    expect(sameWorkloadReport({ activity: 'backup' }, { activity: 'backup' })).toBe(true);
    expect(sameWorkloadReport({ activity: 'backup' }, {})).toBe(false);
    expect(sameWorkloadReport({ volume: { replicas: 3, healthy_replicas: 1 } }, { volume: { replicas: 3, healthy_replicas: 2 } })).toBe(false);
  });

  it('is an optional, strictly validated part of a heartbeat instance entry', () => {
    const entry = { id: 'i1', status: 'running', healthy: true, pid: 1, port: 2 };
    expect(ActualInstanceSchema.safeParse(entry).success).toBe(true);
    expect(ActualInstanceSchema.safeParse({ ...entry, volume: { replicas: 3, healthy_replicas: 1 }, activity: 'restore' }).success).toBe(true);
    expect(ActualInstanceSchema.safeParse({ ...entry, volume: { replicas: 3, healthy_replicas: 4 } }).success).toBe(false);
    expect(ActualInstanceSchema.safeParse({ ...entry, volume: { replicas: 3, healthy_replicas: 1, x: 1 } }).success).toBe(false);
    expect(ActualInstanceSchema.safeParse({ ...entry, activity: 'defrag' }).success).toBe(false);
  });
});
