import { ApiError } from './errors.js';

/** The webhook part of the error catalog. */
export const webhookErrors = {
  webhookNotFound: (id: string) =>
    new ApiError(404, 'WEBHOOK_NOT_FOUND', `no webhook "${id}"; list them with \`drydock webhooks list\``, { id }),
  unknownEvents: (prefixes: string[]) =>
    new ApiError(
      400,
      'WEBHOOK_EVENTS_UNKNOWN',
      `no event kind starts with ${prefixes.map((p) => `"${p}"`).join(', ')}; nothing was stored (kinds are listed in README: Notifications, e.g. rollout. or node.down)`,
      { unknown: prefixes },
    ),
};
