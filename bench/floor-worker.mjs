// The floor: the least a worker can do — a bare `ws` client that claims each
// assignment, spawns the agent and reports its exit. No validation, no
// workspaces, no logging. The benchmark compares oz-worker against it.
import { spawn } from 'node:child_process';
import { WebSocket } from 'ws';

const [url, agent] = process.argv.slice(2);
const socket = new WebSocket(`${url}?worker_id=floor`, { headers: { Authorization: 'Bearer floor' } });
socket.on('message', (data) => {
  const { type, data: payload } = JSON.parse(data.toString());
  if (type !== 'task_assignment') return;
  const taskId = payload.task_id;
  socket.send(JSON.stringify({ type: 'task_claimed', data: { task_id: taskId, worker_id: 'floor' } }));
  const child = spawn(agent, ['agent', 'run', '--task-id', taskId], { stdio: 'ignore' });
  child.on('exit', (code) => {
    const message =
      code === 0
        ? { type: 'task_completed', data: { task_id: taskId, message: 'Task completed successfully' } }
        : { type: 'task_failed', data: { task_id: taskId, message: `exit ${code}` } };
    socket.send(JSON.stringify(message));
  });
});
process.on('SIGTERM', () => process.exit(0));
