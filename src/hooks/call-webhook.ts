// A webhook hook: POST the run's fields as JSON; any 2xx is success; bounded by the hook's
// timeout. The body carries the run id, so a receiver can tell a repeat (a webhook interrupted
// by a restart is sent again: at least once) from a new run.
import { HOOK_OUTPUT_TAIL_BYTES } from '../domain/protocol.js';
import { type HookOutcome, printable } from './run-command.js';

/** The JSON body: DRYDOCK_* as snake_case fields, the hook's own env under `env`. */
export function webhookBody(env: Record<string, string>): Record<string, unknown> {
  const own: Record<string, string> = {};
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith('DRYDOCK_')) body[key.slice('DRYDOCK_'.length).toLowerCase()] = value;
    else own[key] = value;
  }
  return { ...body, env: own };
}

export async function callWebhook(url: string, env: Record<string, string>, timeoutMs: number): Promise<HookOutcome> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'drydock-hook' },
      body: JSON.stringify(webhookBody(env)),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'manual',
    });
    const text = await response.text();
    const tail = printable(text.length > HOOK_OUTPUT_TAIL_BYTES ? text.slice(-HOOK_OUTPUT_TAIL_BYTES) : text);
    const ok = response.status >= 200 && response.status < 300;
    return { status: ok ? 'succeeded' : 'failed', exitCode: null, outputTail: tail, reason: ok ? null : `HTTP ${response.status}`, finishedAt: new Date() };
  } catch (error) {
    const timedOut = (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError';
    return {
      status: 'failed',
      exitCode: null,
      outputTail: '',
      reason: timedOut ? `timed out after ${timeoutMs / 1000} s` : printable(`request failed: ${(error as Error).message}`),
      finishedAt: new Date(),
    };
  }
}
