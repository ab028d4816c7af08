// At most so many API calls of one client in flight; the rest wait their turn
// in order. Every call of the Kubernetes client opens its own connection, so a
// burst of 1,000 task Jobs would otherwise hold 1,000 requests, sockets and
// (on a real cluster) TLS sessions at once: memory the worker keeps afterwards,
// and a handshake storm for the API server, which serves them no faster.
// Calls that only gather diagnostics (events of a pending pod, an ended pod's
// log lines) wait behind those that move a task along (create, delete,
// annotate): a thousand tasks' diagnostics must not delay their statuses.
/** `task`: creates, deletes and reads a task's outcome waits on; `diagnostics`: what only explains (events, logs). */
export type RequestPriority = 'task' | 'diagnostics';

export class RequestLimit {
  private active = 0;
  private readonly waiting: Record<RequestPriority, (() => void)[]> = { task: [], diagnostics: [] };
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  async run<T>(work: () => Promise<T>, priority: RequestPriority = 'task'): Promise<T> {
    if (this.active < this.max) this.active++;
    else await new Promise<void>((resolve) => this.waiting[priority].push(resolve));
    try {
      return await work();
    } finally {
      // The slot passes straight to the next caller, task calls first.
      const next = this.waiting.task.shift() ?? this.waiting.diagnostics.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Calls running and waiting (tests, diagnostics). */
  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.task.length + this.waiting.diagnostics.length };
  }
}
