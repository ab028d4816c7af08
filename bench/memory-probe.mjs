// Preloaded into a worker by bench/kube-memory.mjs (node --expose-gc --import):
// on SIGUSR2 it notes process.memoryUsage(), collects garbage, notes it again
// (and, a second later, the RSS once freed pages went back) and writes all
// that as JSON to $OZ_BENCH_MEMORY_FILE; plus a heap snapshot when
// $OZ_BENCH_HEAP_SNAPSHOT names a directory.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import v8 from 'node:v8';

const spaces = () => Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
let count = 0;
process.on('SIGUSR2', () => {
  const before = { ...process.memoryUsage(), spaces: spaces() };
  globalThis.gc?.();
  globalThis.gc?.();
  const after = { ...process.memoryUsage(), spaces: spaces() };
  const snapshotDir = process.env.OZ_BENCH_HEAP_SNAPSHOT;
  const snapshot = snapshotDir ? v8.writeHeapSnapshot(join(snapshotDir, `worker-${++count}.heapsnapshot`)) : undefined;
  setTimeout(() => writeFileSync(process.env.OZ_BENCH_MEMORY_FILE, JSON.stringify({ before, ...after, rssLater: process.memoryUsage.rss(), snapshot })), 1000);
});

// $OZ_BENCH_HEAP_PROFILE=<file>: sampled allocations that reached the old generation
// (live or collected by a major GC), from start-up to the second probe.
if (process.env.OZ_BENCH_HEAP_PROFILE) {
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', { samplingInterval: 8192, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
  let probes = 0;
  process.on('SIGUSR2', () => {
    if (++probes !== 2) return;
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (!error) writeFileSync(process.env.OZ_BENCH_HEAP_PROFILE, JSON.stringify(result.profile));
    });
  });
}
