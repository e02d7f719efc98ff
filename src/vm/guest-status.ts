import { type ParsedWorkloadStatus, parseWorkloadStatus, WORKLOAD_STATUS_MAX_BYTES } from '../domain/workload-report.js';

/** What the reference guest answers at /status: state that survives a live migration (src/vm/guest-init.ts). */
export interface GuestStatus {
  boot_id: string;
  uptime_s: number;
  requests: number;
}

/** GET `<url>/status` straight from a guest (an instance's own URL, not through the edge); counts as one of its requests. */
export async function guestStatus(url: string, timeoutMs = 3000): Promise<GuestStatus> {
  const response = await fetch(`${url}/status`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`GET ${url}/status answered ${response.status}`);
  const status = (await response.json()) as GuestStatus;
  if (typeof status.boot_id !== 'string' || status.boot_id === '') throw new Error(`GET ${url}/status has no boot_id`);
  return status;
}

/**
 * A guest's own report of its data (`volume`, `activity` in its status JSON, when its image
 * declares a status path): read at most every VM_STATUS_INTERVAL_MS by the vm driver. A guest
 * that does not answer now gives undefined (keep the last report); one whose status has no such
 * fields (the reference guest's) reports none; more than WORKLOAD_STATUS_MAX_BYTES is refused.
 */
export async function guestWorkloadStatus(url: string, timeoutMs: number): Promise<ParsedWorkloadStatus | undefined> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    return undefined;
  }
  if (response.status === 404) {
    await response.body?.cancel();
    return { ok: true, report: {} };
  }
  if (!response.ok) {
    await response.body?.cancel();
    return undefined;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of response.body ?? []) {
      size += (chunk as Uint8Array).byteLength;
      if (size > WORKLOAD_STATUS_MAX_BYTES) {
        await response.body?.cancel().catch(() => {});
        return { ok: false, problem: `larger than ${WORKLOAD_STATUS_MAX_BYTES} bytes` };
      }
      chunks.push(chunk as Uint8Array);
    }
  } catch {
    return undefined;
  }
  return parseWorkloadStatus(Buffer.concat(chunks).toString('utf8'));
}
