// The text of a thrown value, for messages and logs: an Error's message, else
// the value as a string (a rejected promise may carry anything).

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
