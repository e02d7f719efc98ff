// One Server-Sent Events connection for the whole page (the operator's /api/v1/events/stream),
// read with fetch + eventsource-parser: the stream names each message by its event kind, which a
// browser EventSource would only deliver to one listener per kind. Pages subscribe with a filter
// and reload what they show when a matching event arrives; a dropped stream resumes after the
// last event id it delivered, so nothing committed meanwhile is missed.
import { createParser } from 'eventsource-parser';
import { useEffect, useRef } from 'preact/hooks';
import { apiUrl, get } from './api.js';

export interface DrydockEvent {
  id: number;
  kind: string;
  actor: string | null;
  node_id: string | null;
  rollout_id: string | null;
  data: Record<string, unknown>;
  at: string;
}

type Listener = (event: DrydockEvent) => void;
const listeners = new Set<Listener>();
let controller: AbortController | undefined;
/** Wait before reconnecting a dropped stream. */
const RECONNECT_MS = 1_000;

async function follow(signal: AbortSignal): Promise<void> {
  // Start after the newest event: the pages load the present themselves.
  const [newest] = await get<DrydockEvent[]>('/api/v1/events?order=desc&limit=1');
  let after = newest?.id ?? 0;
  while (!signal.aborted) {
    try {
      const response = await fetch(apiUrl(`/api/v1/events/stream?after=${after}`), { signal, credentials: 'same-origin', headers: { accept: 'text/event-stream' } });
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      const parser = createParser({
        onEvent(message) {
          const event = JSON.parse(message.data) as DrydockEvent;
          after = event.id;
          for (const listener of listeners) listener(event);
        },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } catch {
      if (signal.aborted) return;
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

export function startLive(): void {
  if (controller) return;
  controller = new AbortController();
  void follow(controller.signal).catch(() => undefined);
}

export function stopLive(): void {
  controller?.abort();
  controller = undefined;
}

/** Calls `reload` (at most every 300 ms) when an event matching `filter` arrives. */
export function useLive(filter: (event: DrydockEvent) => boolean, reload: () => void): void {
  const latest = useRef({ filter, reload });
  latest.current = { filter, reload };
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const listener = (event: DrydockEvent) => {
      if (!latest.current.filter(event) || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        latest.current.reload();
      }, 300);
    };
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
      if (timer) clearTimeout(timer);
    };
  }, []);
}

/** Every event as it arrives (the events page's live tail). */
export function useEveryEvent(listener: Listener): void {
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => {
    const l = (e: DrydockEvent) => latest.current(e);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
}
