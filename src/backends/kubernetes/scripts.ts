// Shell the task Pod runs, byte for byte as the Go worker writes it.

/** Task container: source the env file setup may have written, then hand over to the agent entrypoint. */
export const TASK_WRAPPER_SCRIPT = [
  'if [ -f "$OZ_ENVIRONMENT_FILE" ]; then',
  '  set -a',
  '  . "$OZ_ENVIRONMENT_FILE"',
  '  set +a',
  'fi',
  '',
  'exec /agent/entrypoint.sh "$@"',
].join('\n');

/** Copy mode: an init container copies its image's root filesystem into the sidecar volume at /target. */
export const SIDECAR_COPY_SCRIPT = [
  'tar \\',
  '  --exclude=./target \\',
  '  --exclude=./proc \\',
  '  --exclude=./sys \\',
  '  --exclude=./dev \\',
  '  --exclude=./.dockerenv \\',
  '  --exclude=./var/run/secrets \\',
  '  --exclude=./run/secrets \\',
  '  -C / -cf - . | tar --no-same-owner --no-same-permissions -C /target -xf -',
].join('\n');

export const WORKSPACE_PATH = '/workspace';
export const ENV_FILE_PATH = '/workspace/.oz-env';
