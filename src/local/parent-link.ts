// The tie between `oz-worker local` and the workers it starts: an IPC channel
// (Node's `ipc` stdio). The operating system closes it when `local` ends, even
// by SIGKILL, so the worker learns of it at once, stops its agents and exits —
// no orphan keeps running tasks or reconnecting with the same worker id.

/**
 * In the worker: calls `onParentGone` once when the parent's channel closes.
 * No-op for a worker not started by `local` (`exitWithParent` is `OZ_WORKER_EXIT_WITH_PARENT`).
 */
export function watchParent(exitWithParent: boolean, onParentGone: () => void): void {
  if (!exitWithParent || !process.channel) return;
  // The channel only carries this signal; it must not keep the worker alive.
  process.channel.unref();
  process.once('disconnect', onParentGone);
}
