// Docker bind specs (`-v` flags and `backend.docker.volumes`) are passed to
// Docker unchanged; this only catches shapes Docker would refuse for every
// task, so the mistake shows at start-up instead of on the first task.

export const VOLUME_FORMAT = 'HOST_PATH:CONTAINER_PATH or HOST_PATH:CONTAINER_PATH:MODE';

/** Why `spec` is not a usable bind spec, or undefined when it is. */
export function volumeSpecProblem(spec: string): string | undefined {
  if (spec.trim() === '') return `is empty (use ${VOLUME_FORMAT})`;
  const parts = spec.split(':');
  const [source, target] = parts;
  if (parts.length < 2 || parts.length > 3 || !source || !target) {
    return `must look like ${VOLUME_FORMAT} (got ${JSON.stringify(spec)})`;
  }
  if (!target.startsWith('/')) {
    return `needs an absolute container path (got ${JSON.stringify(target)} in ${JSON.stringify(spec)})`;
  }
  if (parts.length === 3 && parts[2] === '') return `has an empty MODE after the last ":" (got ${JSON.stringify(spec)}; use e.g. ro or rw, or drop the colon)`;
  return undefined;
}
