// Helpers for scraping the worker's Prometheus endpoint in tests.
import { createServer } from 'node:net';

/** A loopback port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Sample lines of a scrape by series (without the scope labels), e.g. `oz_worker_tasks_rejected_total{reason="at_capacity"}`. */
export function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    out.set(
      line
        .slice(0, at)
        .replace(/,?otel_scope_name="[^"]*"/, '')
        .replace(/,?otel_scope_version="[^"]*"/, '')
        .replace('{,', '{')
        .replace('{}', ''),
      Number(line.slice(at + 1)),
    );
  }
  return out;
}
