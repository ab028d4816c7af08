// The dispatch server side of the Kubernetes benchmarks: it takes one worker
// connection, sends team-owned assignments, and records each claim and each
// terminal status with the time it arrived.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

export async function startStubDispatch() {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const claimed = new Set();
  /** task id → { at: performance.now(), type } of its terminal status. */
  const statusAt = new Map();
  let socket;
  const connected = new Promise((r) =>
    wss.on('connection', (ws) => {
      socket = ws;
      ws.on('message', (data) => {
        const msg = JSON.parse(data.toString());
        if (msg.type === 'task_claimed') claimed.add(msg.data.task_id);
        if (msg.type === 'task_completed' || msg.type === 'task_failed') statusAt.set(msg.data.task_id, { at: performance.now(), type: msg.type });
      });
      r();
    }),
  );
  return {
    url: `ws://127.0.0.1:${http.address().port}/ws`,
    claimed,
    statusAt,
    connected,
    assign(id) {
      socket.send(
        JSON.stringify({
          type: 'task_assignment',
          data: { task_id: id, execution_id: `e-${id}`, task: { id, title: 'bench', owner: { Type: 'TEAM', Id: 1 } } },
        }),
      );
    },
    close() {
      wss.close();
      http.close();
    },
  };
}
