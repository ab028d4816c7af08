// An optional extension of the worker protocol, spoken only with the local
// dispatch server: the agent's output lines, sent by the worker as
// `task_output` frames. The server announces it on the WebSocket upgrade
// response (`Oz-Worker-Extensions: task-output`); a worker that does not see
// the announcement (Warp) never sends such a frame, and a worker that does not
// know it (the Go worker) simply never sends one. Output is best-effort: it
// never delays or replaces a status message.
import { z } from 'zod';

export const EXTENSIONS_HEADER = 'oz-worker-extensions';
export const TASK_OUTPUT_EXTENSION = 'task-output';
export const TASK_OUTPUT_TYPE = 'task_output';

/** A longer line is cut to this many characters (and marked). */
export const MAX_OUTPUT_LINE_CHARS = 4096;
export const MAX_OUTPUT_LINES_PER_FRAME = 256;

export const OutputStreamSchema = z.enum(['stdout', 'stderr']);
export type OutputStreamName = z.infer<typeof OutputStreamSchema>;

export const TaskOutputFrameSchema = z.strictObject({
  type: z.literal(TASK_OUTPUT_TYPE),
  data: z.strictObject({
    task_id: z.string().min(1).max(200),
    lines: z
      .array(z.strictObject({ stream: OutputStreamSchema, text: z.string().max(MAX_OUTPUT_LINE_CHARS) }))
      .min(1)
      .max(MAX_OUTPUT_LINES_PER_FRAME),
  }),
});
export type TaskOutputFrame = z.infer<typeof TaskOutputFrameSchema>;

/** Whether an upgrade response's extensions header lists task output. */
export function announcesTaskOutput(header: string | string[] | undefined): boolean {
  const values = Array.isArray(header) ? header : header === undefined ? [] : [header];
  return values.some((value) => value.split(',').some((name) => name.trim().toLowerCase() === TASK_OUTPUT_EXTENSION));
}

/** A line cut to the frame's limit, saying so. */
export function capOutputLine(text: string): string {
  if (text.length <= MAX_OUTPUT_LINE_CHARS) return text;
  const marker = ' […line cut]';
  return text.slice(0, MAX_OUTPUT_LINE_CHARS - marker.length) + marker;
}
