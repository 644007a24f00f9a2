'use strict';
// The process that forks the service's Chroma children (see spawner.ts for why).
// Protocol over the IPC channel, one JSON message each way:
//   parent -> host: {type:'spawn', id, command, args, env, nice, standby?: {args, line}} | {type:'kill', id, signal}
//                   | {type:'standby', command, args, env, nice, ttlMs}
//   host -> parent: {type:'spawned', id, pid, adopted} | {type:'data', id, chunk} | {type:'error', id, message}
//                   | {type:'exit', id, code, signal}
// Standby: one warm child (chroma-launcher.cjs --standby: the binding loaded, waiting for its
// arguments on stdin) kept for ttlMs. A spawn whose `standby` matches it (same command, standby
// args, env and nice) adopts it: the host writes `line` (JSON) to its stdin and answers with its pid,
// saving the child's start (~150-200 ms here). Otherwise the spawn starts a new child as usual.
// Ownership: the service owns this host; this host owns the children it spawns. When the service
// goes (even by SIGKILL) the IPC channel disconnects and the host SIGKILLs every child and exits;
// each child (chroma-launcher.cjs) also exits when the host's pipe to its stdin closes, so a
// SIGKILLed host leaves nothing behind either.
const { spawn } = require('node:child_process');
const { setPriority } = require('node:os');
const { onParentGone } = require('./parent-watch.cjs');

const children = new Map();
/** The warm standby: {key, child, early: string[], timer}, or null. */
let standby = null;

function send(message) {
  if (!process.connected) return;
  try {
    process.send(message);
  } catch {
    /* the parent is gone; disconnect handling below ends us */
  }
}

function killAll() {
  dropStandby();
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

function running(child) {
  return child.exitCode === null && child.signalCode === null;
}

function specKey(command, args, env, nice) {
  return JSON.stringify([command, args, env, nice || 0]);
}

function dropStandby() {
  if (!standby) return;
  clearTimeout(standby.timer);
  try {
    standby.child.kill('SIGKILL');
  } catch {
    /* already gone */
  }
  standby = null;
}

function startChild(command, args, env, nice) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  if (child.pid !== undefined && nice) {
    try {
      setPriority(child.pid, nice);
    } catch {
      /* not allowed here: the child runs at our priority */
    }
  }
  return child;
}

/** Forward a child's output and exit under request id `id` (output before that was kept in `early`). */
function own(id, child, early, adopted) {
  children.set(id, child);
  send({ type: 'spawned', id, pid: child.pid, adopted });
  for (const chunk of early) send({ type: 'data', id, chunk });
  const forward = (buf) => send({ type: 'data', id, chunk: buf.toString('utf8') });
  child.stdout.on('data', forward);
  child.stderr.on('data', forward);
  child.once('exit', (code, signal) => {
    children.delete(id);
    send({ type: 'exit', id, code, signal });
  });
}

function onStandby(m) {
  const key = specKey(m.command, m.args, m.env, m.nice);
  const ttlMs = Math.max(0, Number(m.ttlMs) || 0);
  if (standby && standby.key === key && running(standby.child)) {
    clearTimeout(standby.timer);
    standby.timer = setTimeout(dropStandby, ttlMs);
    standby.timer.unref();
    return;
  }
  dropStandby();
  if (ttlMs === 0) return;
  let child;
  try {
    child = startChild(m.command, m.args, m.env, m.nice);
  } catch {
    return; // a standby is an optimisation: the next spawn starts its child as usual
  }
  child.once('error', () => undefined);
  if (child.pid === undefined) return;
  child.stdin.on('error', () => undefined);
  const mine = { key, child, early: [], timer: setTimeout(dropStandby, ttlMs) };
  mine.timer.unref();
  const keep = (buf) => {
    if (mine.early.length < 200) mine.early.push(buf.toString('utf8'));
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  mine.keep = keep;
  child.once('exit', () => {
    if (standby === mine) {
      clearTimeout(mine.timer);
      standby = null;
    }
  });
  standby = mine;
}

/** The standby, taken out of its slot, if it matches this spawn and is still alive. */
function takeStandby(m) {
  if (!m.standby || !standby) return null;
  const s = standby;
  if (s.key !== specKey(m.command, m.standby.args, m.env, m.nice) || !running(s.child)) return null;
  standby = null;
  clearTimeout(s.timer);
  s.child.stdout.off('data', s.keep);
  s.child.stderr.off('data', s.keep);
  return s;
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
  if (m.type === 'standby') {
    onStandby(m);
    return;
  }
  if (m.type !== 'spawn') return;
  const id = m.id;
  const warm = takeStandby(m);
  if (warm) {
    warm.child.stdin.write(`${JSON.stringify(m.standby.line)}\n`);
    own(id, warm.child, warm.early, true);
    return;
  }
  let child;
  try {
    child = startChild(m.command, m.args, m.env, m.nice);
  } catch (err) {
    send({ type: 'error', id, message: err && err.message ? err.message : String(err) });
    return;
  }
  child.once('error', (err) => {
    children.delete(id);
    send({ type: 'error', id, message: err && err.message ? err.message : String(err) });
  });
  if (child.pid === undefined) return; // the 'error' event follows
  child.stdin.on('error', () => undefined);
  own(id, child, [], false);
});

// The service is gone (it exited, crashed or was SIGKILLed): take every child down with us.
process.on('disconnect', leave);
// A terminal's Ctrl-C reaches the whole process group: the service shuts its children down in
// order and then disconnects, so the host ignores SIGINT. SIGTERM aimed at the host ends it.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', leave);
// Backstop for a parent that is gone without the channel noticing.
onParentGone(leave, 1000);
