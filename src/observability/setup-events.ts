// Reports a task's setup phases to the server, one run client-events request
// per phase, as the Go worker does (internal/worker/setup_events.go): with the
// task's own key, in the background, bounded by 5 s, never retried. Nothing a
// task does waits for it, and its failure is one warning line.
import { randomUUID } from 'node:crypto';
import { errorMessage } from '../errors/error-message.js';
import type { Logger } from '../log/logger.js';
import { CLOUD_AGENT_ID_HEADER, clientEventBody, clientEventsUrl, WORKLOAD_TOKEN_HEADER, type SetupEventName } from '../protocol/client-events.js';
import { PostError, type HttpPoster } from './http-post.js';

/** How long one report may take, connecting and reading the answer included. */
export const CLIENT_EVENT_TIMEOUT_MS = 5_000;
/** How much of a refusal's body its warning line quotes. */
export const MAX_RESPONSE_TEXT_BYTES = 512;

/** Where and how a task's events go, or why they cannot. */
export type ClientEventsTarget = { url: string; headers: Record<string, string>; taskId: string; secrets: string[] } | { disabled: string };

/**
 * The request every event of the task shares: the server root's run path, the
 * task's key (`env_vars.WARP_API_KEY`) as the bearer, and the workload token
 * only when the assignment has a non-empty one. Pure.
 */
export function clientEventsTarget(serverRootUrl: string, taskId: string, envVars: Readonly<Record<string, string>> | undefined): ClientEventsTarget {
  if (serverRootUrl.trim() === '') return { disabled: 'the worker has no server root URL configured' };
  const key = envVars?.WARP_API_KEY ?? '';
  if (key === '') return { disabled: 'WARP_API_KEY is not present in the task assignment env vars' };
  const token = envVars?.WARP_WORKLOAD_TOKEN ?? '';
  return {
    url: clientEventsUrl(serverRootUrl, taskId),
    taskId,
    headers: {
      'Content-Type': 'application/json',
      Authorization: `Bearer ${key}`,
      [CLOUD_AGENT_ID_HEADER]: taskId,
      ...(token !== '' ? { [WORKLOAD_TOKEN_HEADER]: token } : {}),
    },
    secrets: token !== '' ? [key, token] : [key],
  };
}

/** One task's reporter. */
export class SetupEventReporter {
  constructor(
    private readonly target: Exclude<ClientEventsTarget, { disabled: string }>,
    private readonly poster: HttpPoster,
    private readonly log: Logger,
    private readonly newUuid: () => string = randomUUID,
  ) {}

  /**
   * Sends one phase in the background. The returned promise (for tests) never
   * rejects: a failure is logged once, without the key, and not retried.
   */
  report(name: SetupEventName, start: Date, finish: Date, isError: boolean): Promise<void> {
    const body = JSON.stringify(clientEventBody(name, start, finish, isError, this.newUuid()));
    return this.send(name, body);
  }

  private async send(name: SetupEventName, body: string): Promise<void> {
    const { url, headers, taskId } = this.target;
    try {
      const response = await this.poster.post(url, {
        headers,
        body,
        deadline: Date.now() + CLIENT_EVENT_TIMEOUT_MS,
        maxResponseBytes: MAX_RESPONSE_TEXT_BYTES,
        redirects: 'none',
      });
      if (response.status < 200 || response.status > 299) {
        throw new Error(`client event request returned status ${response.status}: ${response.body.toString('utf8')}`);
      }
    } catch (error) {
      // The worker is shutting down and ended the requests in flight: nothing went wrong with this one.
      if (error instanceof PostError && error.failure === 'cancelled') return;
      this.log.warn({ event: name }, `Failed to report setup event ${name} for task ${taskId}: ${this.withoutSecrets(describeFailure(error))}`);
    }
  }

  private withoutSecrets(text: string): string {
    return this.target.secrets.reduce((out, secret) => out.split(secret).join('[REDACTED]'), text);
  }
}

/** A failed request in a few words: a timeout says so, a network error its own text and code. */
function describeFailure(error: unknown): string {
  if (error instanceof PostError && error.failure === 'timeout') return `no answer within ${CLIENT_EVENT_TIMEOUT_MS / 1000} s`;
  const failure = error instanceof PostError && error.cause !== undefined ? error.cause : error;
  const code = (failure as { code?: unknown })?.code;
  const text = errorMessage(failure);
  return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text;
}
