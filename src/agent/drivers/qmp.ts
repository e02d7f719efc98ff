import { EventEmitter } from 'node:events';
import { type Socket, createConnection } from 'node:net';

/** An asynchronous QMP event, e.g. `STOP`, `RESUME`, `SHUTDOWN`, `MIGRATION`. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpCommandError extends Error {
  constructor(
    readonly command: string,
    /** QMP's error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotActive`. */
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

/** The QMP connection is gone (QEMU quit or was killed) or the command got no answer in time. */
export class QmpConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : options);
  }
}

export interface QmpConnectOptions {
  /** Give up connecting after this long. QEMU creates the socket shortly after spawn. Default 10 000 ms. */
  deadlineMs?: number;
  /** Pause between connection attempts while the socket is missing or refuses. Default 50 ms. */
  retryMs?: number;
}

export interface QmpExecuteOptions {
  /** Reject (and forget the request) when no reply arrives in time. Default 10 000 ms. */
  timeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

type QmpEvents = { event: [QmpEvent]; close: [] };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A QMP client over QEMU's unix socket. One JSON object per line; replies carry the `id` of
 * their request, and events (`{"event": …}`) arrive interleaved with them, so every line is
 * routed by its shape rather than by order. Emits `event` for each QMP event and `close` once
 * when the socket ends; requests still pending then are rejected.
 */
export class QmpClient extends EventEmitter<QmpEvents> {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private isClosed = false;
  /** Set until the greeting line has arrived; the first line QEMU writes is `{"QMP": …}`. */
  private onGreeting: ((line: string) => void) | null = null;

  private constructor(private readonly socket: Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => {
      // 'close' follows and does the cleanup; the error itself adds nothing a caller can use.
    });
    socket.on('close', () => this.onClose());
  }

  /** Connect (retrying until the deadline), read the greeting and leave capabilities-negotiation mode. */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const deadline = Date.now() + (options.deadlineMs ?? 10_000);
    const retryMs = options.retryMs ?? 50;
    for (;;) {
      let client: QmpClient | null = null;
      try {
        client = new QmpClient(await openSocket(path, Math.max(deadline - Date.now(), 1)));
        await client.handshake(Math.max(deadline - Date.now(), 1000));
        return client;
      } catch (error) {
        client?.socket.destroy();
        const code = (error as NodeJS.ErrnoException).code;
        // ENOENT: QEMU has not created the socket yet; ECONNREFUSED: a stale file of an earlier run.
        const retryable = code === 'ENOENT' || code === 'ECONNREFUSED';
        if (!retryable || Date.now() + retryMs >= deadline) {
          throw new QmpConnectionError(`could not connect to QMP at ${path}: ${(error as Error).message}`, { cause: error });
        }
        await sleep(retryMs);
      }
    }
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const greeting = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        // QEMU serves one QMP client at a time; a second one waits in the backlog without a greeting.
        reject(new QmpConnectionError(`no QMP greeting within ${timeoutMs} ms (does another client hold the monitor?)`));
      }, timeoutMs);
      const closed = () => {
        clearTimeout(timer);
        reject(new QmpConnectionError('the socket closed before the QMP greeting'));
      };
      this.once('close', closed);
      this.onGreeting = (line) => {
        clearTimeout(timer);
        this.removeListener('close', closed);
        resolve(line);
      };
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(greeting);
    } catch {
      parsed = null;
    }
    if (typeof parsed !== 'object' || parsed === null || !('QMP' in parsed)) {
      throw new QmpConnectionError(`not a QMP greeting: ${greeting.slice(0, 200)}`);
    }
    await this.execute('qmp_capabilities', undefined, { timeoutMs });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Run one command; resolves QMP's `return` value or rejects with a {@link QmpCommandError}. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: QmpExecuteOptions = {}): Promise<T> {
    if (this.isClosed) return Promise.reject(new QmpConnectionError(`QMP ${command}: the connection is closed`));
    const id = String(this.nextId++);
    const timeoutMs = options.timeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpConnectionError(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Close the connection; QEMU keeps running. Pending requests are rejected. */
  close(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once('close', resolve);
      this.socket.end();
      // A peer that never finishes its side must not keep us waiting.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (!line) continue;
      if (this.onGreeting) {
        const onGreeting = this.onGreeting;
        this.onGreeting = null;
        onGreeting(line);
      } else {
        this.onLine(line);
      }
    }
  }

  private onLine(line: string): void {
    let message: { event?: string; id?: unknown; return?: unknown; error?: { class?: string; desc?: string } };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return; // QEMU only writes JSON here; a torn line at close is not worth failing over.
    }
    if (typeof message.event === 'string') {
      this.emit('event', message as QmpEvent);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (!pending || id === undefined) return; // A reply to a request that already timed out.
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (message.error) pending.reject(new QmpCommandError(pending.command, message.error.class ?? 'Unknown', message.error.desc ?? ''));
    else pending.resolve(message.return);
  }

  private onClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new QmpConnectionError(`QMP ${pending.command}: the connection closed (QEMU quit?)`));
      this.pending.delete(id);
    }
    this.emit('close');
  }
}

function openSocket(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new QmpConnectionError(`connect to ${path} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
