// The in-repo fake Engine API and the real engine, asked the same questions,
// must give the same answers where the backend depends on them. The fake half
// always runs; the real half needs test/infra/docker/up.sh (else it skips, saying why).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { FakeDockerEngine } from '../support/fake-docker-engine.js';
import { findRealDocker, type RealDocker } from '../support/real-docker.js';

const found = await findRealDocker();
const docker = 'skip' in found ? undefined : found;
if ('skip' in found) console.log(`real Docker parity checks skipped: ${found.skip}`);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** What the backend's container bodies look like per engine: the fake reads FAKE_* env, the real one runs the stand-in. */
interface Peer {
  name: string;
  socketPath: string;
  /** A container whose PID 1 has no SIGTERM handler (a shell entrypoint without `exec`). */
  ignoresTerm: Record<string, unknown>;
  /** A container that allocates far beyond 256 MiB. */
  greedy: Record<string, unknown>;
  setUnreachableRegistry(): void;
  close(): Promise<void>;
}

async function fakePeer(): Promise<Peer> {
  const engine = await FakeDockerEngine.start();
  engine.addImage('oz-agent-standin:local');
  return {
    name: 'fake',
    socketPath: engine.socketPath,
    ignoresTerm: { Image: 'oz-agent-standin:local', Env: ['FAKE_RUN=forever', 'FAKE_IGNORE_TERM=1'] },
    greedy: { Image: 'oz-agent-standin:local', Env: ['FAKE_OOM=1'] },
    setUnreachableRegistry: () => void (engine.registryUnreachable = true),
    close: () => engine.close(),
  };
}

function realPeer(d: RealDocker): Peer {
  return {
    name: 'real',
    socketPath: d.socketPath,
    // `; :` keeps the shell from exec-ing sleep: the shell stays PID 1, without a handler.
    ignoresTerm: { Image: d.agentImage, Cmd: ['/bin/sh', '-c', 'sleep 600; :'] },
    greedy: { Image: d.agentImage, Cmd: ['/agent/entrypoint.sh'], Env: ['FAKE_OZ_ALLOC_MB=768'] },
    setUnreachableRegistry: () => undefined, // no registry is reachable from the test engine
    close: async () => undefined,
  };
}

function peerChecks(makePeer: () => Promise<Peer>) {
  let peer: Peer;
  let agent: Agent;
  const created: string[] = [];
  const ask = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<Answer> => {
    const response = await request(`http://docker${path}`, {
      method,
      dispatcher: agent,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    });
    return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
  };
  const create = async (body: Record<string, unknown>): Promise<string> => {
    const answer = await ask('POST', '/v1.41/containers/create', { Labels: { 'dev.oz-worker.test': 'parity' }, ...body });
    expect(answer.status, answer.text).toBe(201);
    const id = (JSON.parse(answer.text) as { Id: string }).Id;
    created.push(id);
    return id;
  };
  const state = async (id: string) =>
    (JSON.parse((await ask('GET', `/v1.41/containers/${id}/json`)).text) as { State: { ExitCode: number; OOMKilled: boolean } }).State;

  beforeAll(async () => {
    peer = await makePeer();
    agent = new Agent({ connect: { socketPath: peer.socketPath } });
  });
  afterAll(async () => {
    for (const id of created) await ask('DELETE', `/v1.41/containers/${id}?force=1&v=1`).catch(() => undefined);
    await agent?.close();
    await peer?.close();
  });

  it('speaks API 1.41 and refuses a newer version prefix with 400', async () => {
    const ping = await ask('GET', '/_ping');
    expect(ping.headers['api-version']).toBe('1.41');
    const newer = await ask('GET', '/v1.45/version');
    expect(newer.status).toBe(400);
    expect(JSON.parse(newer.text)).toEqual({ message: 'client version 1.45 is too new. Maximum supported API version is 1.41' });
    expect((await ask('GET', '/v1.41/version')).status).toBe(200);
  });

  it('fails a pull with no reachable registry as HTTP 500, before any progress stream', async () => {
    peer.setUnreachableRegistry();
    const pull = await ask('POST', '/v1.41/images/create?fromImage=docker.io%2Flibrary%2Fubuntu&tag=22.04');
    expect(pull.status).toBe(500);
    expect((JSON.parse(pull.text) as { message: string }).message).toMatch(
      /^Get "https:\/\/registry-1\.docker\.io\/v2\/": dial tcp: lookup registry-1\.docker\.io.*no such host$/,
    );
  });

  it('refuses more CPUs than the host has at create', async () => {
    const cpus = (JSON.parse((await ask('GET', '/v1.41/info')).text) as { NCPU: number }).NCPU;
    const answer = await ask('POST', '/v1.41/containers/create', { ...peer.ignoresTerm, HostConfig: { NanoCpus: (cpus + 1) * 1e9 } });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.text)).toEqual({ message: `Range of CPUs is from 0.01 to ${cpus.toFixed(2)}, as there are only ${cpus} CPUs available` });
  });

  it('stop: a PID 1 without a SIGTERM handler runs until the timeout, then ends 137', async () => {
    const id = await create(peer.ignoresTerm);
    expect((await ask('POST', `/v1.41/containers/${id}/start`)).status).toBe(204);
    const started = Date.now();
    expect((await ask('POST', `/v1.41/containers/${id}/stop?t=2`)).status).toBe(204);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    expect(await state(id)).toMatchObject({ ExitCode: 137, OOMKilled: false });
  }, 30_000);

  it('OOM-kills only under a memory limit', async () => {
    const unlimited = await create(peer.greedy);
    await ask('POST', `/v1.41/containers/${unlimited}/start`);
    expect(JSON.parse((await ask('POST', `/v1.41/containers/${unlimited}/wait?condition=not-running`)).text)).toMatchObject({ StatusCode: 0 });
    expect(await state(unlimited)).toMatchObject({ ExitCode: 0, OOMKilled: false });
    const limited = await create({ ...peer.greedy, HostConfig: { Memory: 256 * 2 ** 20, MemorySwap: 256 * 2 ** 20 } });
    await ask('POST', `/v1.41/containers/${limited}/start`);
    expect(JSON.parse((await ask('POST', `/v1.41/containers/${limited}/wait?condition=not-running`)).text)).toMatchObject({ StatusCode: 137 });
    expect(await state(limited)).toMatchObject({ ExitCode: 137, OOMKilled: true });
  }, 60_000);
}

describe('the fake Engine API answers as dockerd 20.10 does', () => peerChecks(fakePeer));

describe.skipIf(!docker)('the real engine gives the answers the fake is held to', () => peerChecks(async () => realPeer(docker!)));
