'use strict';
// The process that forks the service's Chroma children (see spawner.ts for why).
// Protocol over the IPC channel, one JSON message each way:
//   parent -> host: {type:'spawn', id, command, args, env, nice} | {type:'kill', id, signal}
//   host -> parent: {type:'spawned', id, pid} | {type:'data', id, chunk} | {type:'error', id, message}
//                   | {type:'exit', id, code, signal}
// Ownership: the service owns this host; this host owns the children it spawns. When the service
// goes (even by SIGKILL) the IPC channel disconnects and the host SIGKILLs every child and exits;
// each child (chroma-launcher.cjs) also exits when the host's pipe to its stdin closes, so a
// SIGKILLed host leaves nothing behind either.
const { spawn } = require('node:child_process');
const { setPriority } = require('node:os');
const { onParentGone } = require('./parent-watch.cjs');

const children = new Map();

function send(message) {
  if (!process.connected) return;
  try {
    process.send(message);
  } catch {
    /* the parent is gone; disconnect handling below ends us */
  }
}

function killAll() {
  for (const child of children.values()) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function leave() {
  killAll();
  process.exit(0);
}

process.on('message', (m) => {
  if (!m || typeof m !== 'object') return;
  if (m.type === 'kill') {
    const child = children.get(m.id);
    if (child) {
      try {
        child.kill(m.signal);
      } catch {
        /* already gone */
      }
    }
    return;
  }
  if (m.type !== 'spawn') return;
  const id = m.id;
  let child;
  try {
    child = spawn(m.command, m.args, { stdio: ['pipe', 'pipe', 'pipe'], env: m.env });
  } catch (err) {
    send({ type: 'error', id, message: err && err.message ? err.message : String(err) });
    return;
  }
  child.once('error', (err) => {
    children.delete(id);
    send({ type: 'error', id, message: err && err.message ? err.message : String(err) });
  });
  if (child.pid === undefined) return; // the 'error' event follows
  children.set(id, child);
  if (m.nice) {
    try {
      setPriority(child.pid, m.nice);
    } catch {
      /* not allowed here: the child runs at our priority */
    }
  }
  send({ type: 'spawned', id, pid: child.pid });
  const forward = (buf) => send({ type: 'data', id, chunk: buf.toString('utf8') });
  child.stdout.on('data', forward);
  child.stderr.on('data', forward);
  child.stdin.on('error', () => undefined);
  child.once('exit', (code, signal) => {
    children.delete(id);
    send({ type: 'exit', id, code, signal });
  });
});

// The service is gone (it exited, crashed or was SIGKILLed): take every child down with us.
process.on('disconnect', leave);
// A terminal's Ctrl-C reaches the whole process group: the service shuts its children down in
// order and then disconnects, so the host ignores SIGINT. SIGTERM aimed at the host ends it.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', leave);
// Backstop for a parent that is gone without the channel noticing.
onParentGone(leave, 1000);
