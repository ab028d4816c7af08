// Small assertions shared by tests.

/** The error a promise rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>, what = 'the call to fail'): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`expected ${what}`);
}

/** Whether a process (or, for a negative pid, a process group) still exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
