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
