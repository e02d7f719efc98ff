/**
 * One HTTP health probe: true only on a 2xx within `timeoutMs`. A TCP connect is not enough for
 * a VM: QEMU's user-mode network (slirp) accepts connections on a forwarded port even while the
 * guest is paused, still incoming, or has not booted, so only an HTTP answer shows that it serves.
 */
export async function probeHttp(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}
