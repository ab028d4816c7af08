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
//   FAKE_OZ_PRINT_RECORD  print the record as one `fake-oz-record: <json>` line (inside a container)
//   FAKE_OZ_PROBE         comma-separated directories: print `fake-oz-probe: <json>` with each one's
//                         entries and whether a file can be written there
//   FAKE_OZ_ALLOC_MB      allocate (and touch) this much memory, then finish
// As PID 1 (in a container) the kernel drops signals without a handler, so SIGTERM
// gets one there: exit 143, as the default action would elsewhere.
import { spawn } from 'node:child_process';
import { readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';

const env = process.env;
const record = { argv: process.argv.slice(2), cwd: process.cwd(), env: { ...env }, pid: process.pid };
if (env.FAKE_OZ_CHILD) {
  const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
  record.childPid = child.pid;
}
if (env.OZ_RECORD_DIR) {
  // Written aside and renamed: a test polling for the record never reads it half written.
  const file = `${env.OZ_RECORD_DIR}/${env.TASK_ID ?? 'unknown'}.json`;
  writeFileSync(`${file}.${process.pid}.tmp`, JSON.stringify(record));
  renameSync(`${file}.${process.pid}.tmp`, file);
}
// Handlers before the first line: a test that cancels once it sees `started` must find them in place.
if (env.FAKE_OZ_IGNORE_TERM) process.on('SIGTERM', () => console.log('fake-oz: ignoring SIGTERM'));
else if (process.pid === 1) {
  process.on('SIGTERM', () => {
    console.log('fake-oz: SIGTERM');
    process.exit(143);
  });
}
console.log(`fake-oz: started with ${record.argv.join(' ')}`);
if (env.FAKE_OZ_PRINT) console.log(env.FAKE_OZ_PRINT);
if (env.FAKE_OZ_ECHO_VAR) console.log(`token=${env[env.FAKE_OZ_ECHO_VAR] ?? ''}`);
if (env.FAKE_OZ_PRINT_RECORD) {
  console.log(`fake-oz-record: ${JSON.stringify({ ...record, uid: process.getuid?.() })}`);
}
if (env.FAKE_OZ_PROBE) {
  const probe = {};
  for (const dir of env.FAKE_OZ_PROBE.split(',')) {
    let entries;
    let write = 'ok';
    try {
      entries = readdirSync(dir).sort();
    } catch (error) {
      entries = error.code;
    }
    try {
      writeFileSync(`${dir}/.fake-oz-probe-${process.pid}`, 'x');
      unlinkSync(`${dir}/.fake-oz-probe-${process.pid}`);
    } catch (error) {
      write = error.code;
    }
    probe[dir] = { entries, write };
  }
  console.log(`fake-oz-probe: ${JSON.stringify(probe)}`);
}
if (env.FAKE_OZ_ALLOC_MB) {
  const held = [];
  for (let mb = 0; mb < Number(env.FAKE_OZ_ALLOC_MB); mb += 16) held.push(Buffer.alloc(16 * 2 ** 20, 1));
  console.log(`fake-oz: allocated ${held.length * 16} MiB`);
}

const finish = () => {
  if (env.FAKE_OZ_SIGNAL) process.kill(process.pid, env.FAKE_OZ_SIGNAL);
  else process.exit(Number(env.FAKE_OZ_EXIT ?? 0));
};
const sleep = Number(env.FAKE_OZ_SLEEP_MS ?? 0);
if (sleep > 0) setTimeout(finish, sleep);
else finish();
