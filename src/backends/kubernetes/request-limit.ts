// At most so many API calls of one client in flight; the rest wait their turn
// in order. Every call of the Kubernetes client opens its own connection, so a
// burst of 1,000 task Jobs would otherwise hold 1,000 requests, sockets and
// (on a real cluster) TLS sessions at once: memory the worker keeps afterwards,
// and a handshake storm for the API server, which serves them no faster.
export class RequestLimit {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active < this.max) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await work();
    } finally {
      // The slot passes straight to the next caller, if any.
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  /** Calls running and waiting (tests, diagnostics). */
  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }
}
