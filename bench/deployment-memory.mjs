// The worker under the memory limit k8s/deployment.yaml gives its container, for
// the Kubernetes benches. Node sizes V8's heap from the cgroup's limit (a pod's
// container runs in one): on a 24 GiB host an unconstrained worker lets its young
// generation grow to 128 MiB during a burst and keeps it, which the Deployment's
// worker never does. So the benches run the worker in a memory cgroup of the
// Deployment's size when this machine lets them make one (root, cgroup v1 or v2
// with the memory controller), and say so either way.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';

const ROOT = resolve(import.meta.dirname, '..');
const UNITS = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 };

/** The worker container's memory limit in k8s/deployment.yaml, in bytes. */
export function deploymentMemoryLimit() {
  const deployment = parse(readFileSync(join(ROOT, 'k8s/deployment.yaml'), 'utf8'));
  const text = String(deployment.spec.template.spec.containers[0].resources.limits.memory);
  const m = /^(\d+)(Ki|Mi|Gi|K|M|G)?$/.exec(text);
  if (!m) throw new Error(`k8s/deployment.yaml: cannot read the memory limit ${text}`);
  return { bytes: Number(m[1]) * (m[2] ? UNITS[m[2]] : 1), text };
}

/** Where a new memory cgroup under this process's own can be made, or why not. */
function cgroupParent() {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  const v1 = lines.map((l) => l.split(':')).find(([, controllers]) => controllers.split(',').includes('memory'));
  if (v1 && existsSync('/sys/fs/cgroup/memory')) return { dir: join('/sys/fs/cgroup/memory', v1[2]), limitFile: 'memory.limit_in_bytes' };
  const v2 = lines.find((l) => l.startsWith('0::'));
  if (v2 && existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const dir = join('/sys/fs/cgroup', v2.slice(3));
    if (!readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').includes('memory')) return { reason: `the memory controller is not enabled below ${dir}` };
    return { dir, limitFile: 'memory.max' };
  }
  return { reason: 'no memory cgroup is mounted' };
}

/**
 * A memory cgroup with the Deployment's limit: `wrap(command, args)` gives the
 * spawn arguments that start a command in it (unchanged when none could be
 * made), `said` the line a bench prints about it, `remove()` when done.
 */
export function deploymentMemoryCgroup(name) {
  const limit = deploymentMemoryLimit();
  const without = (reason) => ({
    wrap: (command, args) => [command, args],
    said: `the worker ran without k8s/deployment.yaml's memory limit (${limit.text}): ${reason}; V8 sized its heap for the whole machine, so RSS reads high`,
    remove: () => {},
  });
  try {
    const parent = cgroupParent();
    if (parent.reason) return without(parent.reason);
    const dir = join(parent.dir, name);
    mkdirSync(dir);
    writeFileSync(join(dir, parent.limitFile), String(limit.bytes));
    const remove = () => {
      try {
        rmdirSync(dir);
      } catch {
        // still has a process, or already gone
      }
    };
    process.on('exit', remove);
    return {
      // The shell joins the cgroup, then becomes the command: Node starts inside it and keeps the pid.
      wrap: (command, args) => ['/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, command, ...args]],
      said: `the worker ran under k8s/deployment.yaml's memory limit (${limit.text}, a memory cgroup), as in its pod`,
      remove,
    };
  } catch (error) {
    return without(`cannot make a memory cgroup here (${error.code ?? error.message})`);
  }
}
