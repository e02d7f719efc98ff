import type { Command } from 'commander';
import { ApiClient } from '../api-client.js';

export const DEFAULT_OPERATOR_URL = 'http://127.0.0.1:8080';

/** The API client for a command, from --operator/--token or DRYDOCK_URL/DRYDOCK_TOKEN. */
export function clientFor(command: Command): ApiClient {
  const options = command.optsWithGlobals<{ operator?: string; token?: string }>();
  return new ApiClient({
    baseUrl: options.operator ?? process.env.DRYDOCK_URL ?? DEFAULT_OPERATOR_URL,
    token: options.token ?? process.env.DRYDOCK_TOKEN,
  });
}

/** Wraps an action so every failure ends the same way (message, exit 1). */
export function action<A extends unknown[]>(run: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const { exitWithError } = await import('./output.js');
    try {
      await run(...args);
    } catch (error) {
      exitWithError(error);
    }
  };
}

export function parseIntOption(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${value}"`);
  return n;
}
