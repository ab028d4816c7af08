// The task's identity token for the log collector, as the Go worker obtains it
// (internal/tasklogs/token.go): `POST {server root}/graphql/v2`, mutation
// `issueTaskIdentityToken`, authenticated with the task's API key and workload
// token. Fetched on first use, reused until a minute before it expires, one
// fetch shared by concurrent callers. Error texts are fixed: never response text.
import { z } from 'zod';
import { PostError, type HttpPoster } from '../http-post.js';

export const IDENTITY_QUERY = [
  'mutation WorkerLogToken($input: IssueTaskIdentityTokenInput!) {',
  '  issueTaskIdentityToken(requestContext: {osContext: {}, clientContext: {}}, input: $input) {',
  '    __typename',
  '    ... on IssueTaskIdentityTokenOutput { token expiresAt }',
  '  }',
  '}',
].join('\n');
export const IDENTITY_AUDIENCE = 'warp-cloud-agent-otel';
export const IDENTITY_DURATION_SECONDS = 10_800;
export const IDENTITY_TIMEOUT_MS = 5_000;
/** A token this close to its expiry is fetched again. */
export const IDENTITY_REUSE_MARGIN_MS = 60_000;
const MAX_IDENTITY_RESPONSE_BYTES = 64 * 1024;

export const IDENTITY_TYPENAME = 'IssueTaskIdentityTokenOutput';

export class IdentityError extends Error {}

/** The identity call's body, as the Go worker sends it. */
export function identityRequestBody(): string {
  return JSON.stringify({ query: IDENTITY_QUERY, variables: { input: { audience: IDENTITY_AUDIENCE, requestedDurationSeconds: IDENTITY_DURATION_SECONDS } } });
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

const IdentityResponseSchema = z.object({
  data: z
    .object({
      issueTaskIdentityToken: z.object({ __typename: z.string().optional(), token: z.string().optional(), expiresAt: z.string().optional() }).nullish(),
    })
    .nullish(),
  errors: z.array(z.unknown()).nullish(),
});

export interface IssuedToken {
  token: string;
  expiresAt: number;
}

/** Reads the identity response; throws an IdentityError with a fixed text for anything unusable. Pure. */
export function parseIdentityResponse(status: number, body: Buffer, now: number): IssuedToken {
  if (status !== 200) throw new IdentityError('task identity request rejected');
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new IdentityError('invalid task identity response');
  }
  const parsed = IdentityResponseSchema.safeParse(json);
  if (!parsed.success) throw new IdentityError('invalid task identity response');
  const { data, errors } = parsed.data;
  const issued = data?.issueTaskIdentityToken;
  const expiresAt = issued?.expiresAt && RFC3339.test(issued.expiresAt) ? Date.parse(issued.expiresAt) : Number.NaN;
  if ((errors?.length ?? 0) > 0 || issued?.__typename !== IDENTITY_TYPENAME || !issued.token || !(expiresAt > now)) {
    throw new IdentityError('task identity token unavailable');
  }
  return { token: issued.token, expiresAt };
}

export interface IdentityOptions {
  serverRootUrl: string;
  apiKey: string;
  workloadToken: string;
  taskId: string;
  poster: HttpPoster;
  /** Each token issued (so it can be redacted too). */
  onIssued?: (token: string) => void;
  now?: () => number;
}

export class IdentityTokenSource {
  private current: IssuedToken | undefined;
  private fetching: Promise<string> | undefined;
  /** How many identity calls were made (tests, diagnostics). */
  calls = 0;

  constructor(private readonly options: IdentityOptions) {}

  /** A usable token: the held one, else a fresh one (shared with concurrent callers). */
  token(): Promise<string> {
    const now = (this.options.now ?? Date.now)();
    if (this.current && this.current.expiresAt - IDENTITY_REUSE_MARGIN_MS > now) return Promise.resolve(this.current.token);
    this.fetching ??= this.fetch().finally(() => (this.fetching = undefined));
    return this.fetching;
  }

  private async fetch(): Promise<string> {
    const { serverRootUrl, apiKey, workloadToken, taskId, poster } = this.options;
    this.calls++;
    let response;
    try {
      response = await poster.post(`${serverRootUrl.replace(/\/+$/, '')}/graphql/v2`, {
        headers: {
          'Content-Type': 'application/json',
          Authorization: `Bearer ${apiKey}`,
          'X-Warp-Cloud-Agent-ID': taskId,
          'X-Warp-Ambient-Workload-Token': workloadToken,
        },
        body: identityRequestBody(),
        // Not tied to the reporter's shutdown: the final flush may still need a token.
        deadline: Date.now() + IDENTITY_TIMEOUT_MS,
        maxResponseBytes: MAX_IDENTITY_RESPONSE_BYTES,
        redirects: 'same-origin',
      });
    } catch (error) {
      throw new IdentityError(error instanceof PostError && error.failure === 'redirects' ? error.message : 'task identity request failed');
    }
    const issued = parseIdentityResponse(response.status, response.body, (this.options.now ?? Date.now)());
    this.current = issued;
    this.options.onIssued?.(issued.token);
    return issued.token;
  }
}
