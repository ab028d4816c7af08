#!/usr/bin/env node
// Recording stand-in for the `oz` CLI used by integration tests. It writes what
// it was started with (argv, cwd, environment, pid) to $OZ_RECORD_DIR/<TASK_ID>.json
// and then behaves as the task's env asks:
//   FAKE_OZ_SLEEP_MS      stay alive this long (default 0)
//   FAKE_OZ_EXIT          exit with this code (default 0)
//   FAKE_OZ_SIGNAL        kill itself with this signal
//   FAKE_OZ_IGNORE_TERM   ignore SIGTERM (to exercise the SIGKILL escalation)
//   FAKE_OZ_PRINT         print this line to stdout
//   FAKE_OZ_ECHO_VAR      print `token=<value of the named variable>` (to test log scrubbing)
//   FAKE_OZ_CHILD         start a grandchild (`sleep 1000`) and record its pid
//   FAKE_OZ_ALLOCATE_MB   touch this many MiB of memory before going on (to run into a memory limit)
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const env = process.env;
const record = { argv: process.argv.slice(2), cwd: process.cwd(), env: { ...env }, pid: process.pid };
if (env.FAKE_OZ_CHILD) {
  const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
  record.childPid = child.pid;
}
if (env.OZ_RECORD_DIR) {
  writeFileSync(`${env.OZ_RECORD_DIR}/${env.TASK_ID ?? 'unknown'}.json`, JSON.stringify(record));
}
console.log(`fake-oz: started with ${record.argv.join(' ')}`);
if (env.FAKE_OZ_PRINT) console.log(env.FAKE_OZ_PRINT);
if (env.FAKE_OZ_ECHO_VAR) console.log(`token=${env[env.FAKE_OZ_ECHO_VAR] ?? ''}`);
const held = [];
for (let i = 0; i < Number(env.FAKE_OZ_ALLOCATE_MB ?? 0); i++) held.push(Buffer.alloc(1024 * 1024, 1));
if (env.FAKE_OZ_IGNORE_TERM) process.on('SIGTERM', () => console.log('fake-oz: ignoring SIGTERM'));

const finish = () => {
  if (env.FAKE_OZ_SIGNAL) process.kill(process.pid, env.FAKE_OZ_SIGNAL);
  else process.exit(Number(env.FAKE_OZ_EXIT ?? 0));
};
const sleep = Number(env.FAKE_OZ_SLEEP_MS ?? 0);
if (sleep > 0) setTimeout(finish, sleep);
else finish();
