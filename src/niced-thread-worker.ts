/**
 * The spawner thread of niced-thread.ts: it lowers its own priority once (thread-nice.ts), then
 * starts the threads it is asked for, which inherit that priority from their first instruction.
 * It relays each thread's `error` and `exit` and ends a thread on `terminate`; the threads' own
 * messages go through their own channels, not through it.
 */
import { MessagePort, parentPort, Worker, workerData, type ResourceLimits } from 'node:worker_threads';
import { currentThreadId, niceCurrentThread } from './store/thread-nice.js';

export type NicedThreadRequest =
  | { type: 'start'; id: number; script: string; workerData: Record<string, unknown>; resourceLimits?: ResourceLimits }
  | { type: 'terminate'; id: number };

export type NicedThreadReply =
  /** Sent once, first: the spawner's own OS thread id (Linux; null elsewhere). */
  | { type: 'spawner'; id: 0; tid: number | null }
  | { type: 'started'; id: number; threadId: number }
  | { type: 'error'; id: number; name: string; message: string; stack?: string | undefined }
  | { type: 'exit'; id: number; code: number };

const port = parentPort!;
const { nice } = workerData as { nice: number };
if (nice) niceCurrentThread(nice);

const threads = new Map<number, Worker>();
const reply = (m: NicedThreadReply) => port.postMessage(m);
reply({ type: 'spawner', id: 0, tid: currentThreadId() });

port.on('message', (m: NicedThreadRequest) => {
  if (m.type === 'terminate') {
    void threads.get(m.id)?.terminate();
    return;
  }
  let w: Worker;
  try {
    w = new Worker(m.script, { ...(m.resourceLimits ? { resourceLimits: m.resourceLimits } : {}), workerData: m.workerData, transferList: Object.values(m.workerData).filter((v) => v instanceof MessagePort) as MessagePort[] });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    reply({ type: 'error', id: m.id, name: e.name, message: e.message, stack: e.stack });
    reply({ type: 'exit', id: m.id, code: 1 });
    return;
  }
  threads.set(m.id, w);
  reply({ type: 'started', id: m.id, threadId: w.threadId });
  w.on('error', (err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    reply({ type: 'error', id: m.id, name: e.name, message: e.message, stack: e.stack });
  });
  w.once('exit', (code) => {
    threads.delete(m.id);
    reply({ type: 'exit', id: m.id, code });
  });
});
