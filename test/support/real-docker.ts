// The private test Docker engine started by test/infra/docker/up.sh, found
// through the env file it writes. Suites on it skip (saying why, on one line)
// when it is not there.
import { existsSync, readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

const CACHE = process.env.OZ_TEST_CACHE ?? '/root/.cache/oz-worker-test';
export const DOCKER_ENV_FILE = `${CACHE}/docker/env`;

export interface RealDocker {
  dockerHost: string;
  socketPath: string;
  agentImage: string;
  sidecarImage: string;
  volumeImage: string;
  /** The image built from the project's Dockerfile, when up.sh could build it. */
  workerImage: string | undefined;
  workerImageProblem: string | undefined;
}

/** `KEY=value` lines as up.sh writes them (values may be shell-quoted with backslashes). */
function parseEnvFile(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, '$1');
  }
  return values;
}

async function ping(socketPath: string): Promise<string | undefined> {
  try {
    const response = await request('http://docker/_ping', { dispatcher: new Agent({ connect: { socketPath } }), signal: AbortSignal.timeout(3_000) });
    await response.body.dump();
    return response.statusCode === 200 ? undefined : `_ping answered HTTP ${response.statusCode}`;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The engine, or why there is none (one line). */
export async function findRealDocker(): Promise<RealDocker | { skip: string }> {
  if (!existsSync(DOCKER_ENV_FILE)) return { skip: `no ${DOCKER_ENV_FILE}; start the engine with: bash test/infra/docker/up.sh` };
  const env = parseEnvFile(readFileSync(DOCKER_ENV_FILE, 'utf8'));
  if (env.OZ_DOCKER_UNAVAILABLE) return { skip: env.OZ_DOCKER_UNAVAILABLE };
  const dockerHost = env.DOCKER_HOST ?? '';
  const socketPath = dockerHost.replace(/^unix:\/\//, '');
  const problem = await ping(socketPath);
  if (problem) return { skip: `the test engine at ${dockerHost} does not answer (${problem}); start it with: bash test/infra/docker/up.sh` };
  return {
    dockerHost,
    socketPath,
    agentImage: env.OZ_DOCKER_AGENT_IMAGE ?? 'oz-agent-standin:local',
    sidecarImage: env.OZ_DOCKER_SIDECAR_IMAGE ?? 'oz-sidecar-standin:local',
    volumeImage: env.OZ_DOCKER_VOLUME_IMAGE ?? 'oz-agent-volume:local',
    workerImage: env.OZ_DOCKER_WORKER_IMAGE,
    workerImageProblem: env.OZ_DOCKER_WORKER_IMAGE_UNAVAILABLE,
  };
}

/** A small Engine API client for assertions (what is on the engine), independent of the product's. */
export class EngineProbe {
  private readonly agent: Agent;

  constructor(socketPath: string) {
    this.agent = new Agent({ connect: { socketPath } });
  }

  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const response = await request(`http://docker/v1.41${path}`, {
      method,
      dispatcher: this.agent,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await response.body.text();
    return { status: response.statusCode, json: (text ? JSON.parse(text) : {}) as T };
  }

  async containers(labels: string[]): Promise<Array<{ Id: string; Names: string[]; State: string; Labels: Record<string, string> }>> {
    const filters = encodeURIComponent(JSON.stringify({ label: labels }));
    return (
      await this.call<Array<{ Id: string; Names: string[]; State: string; Labels: Record<string, string> }>>('GET', `/containers/json?all=1&filters=${filters}`)
    ).json;
  }

  async volumes(labels: string[] = []): Promise<Array<{ Name: string; Labels: Record<string, string> | null }>> {
    const filters = encodeURIComponent(JSON.stringify(labels.length ? { label: labels } : {}));
    return (
      (await this.call<{ Volumes: Array<{ Name: string; Labels: Record<string, string> | null }> | null }>('GET', `/volumes?filters=${filters}`)).json
        .Volumes ?? []
    );
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
