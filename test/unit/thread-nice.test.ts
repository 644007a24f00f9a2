import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { niceFromStat } from '../../src/store/thread-nice.js';

/** The niceness of the thread whose /proc/<pid>/task/<tid>/stat this is. */
function niceOf(statPath: string): number {
  return niceFromStat(readFileSync(statPath, 'utf8'));
}

const built = pathToFileURL(resolve(import.meta.dirname, '../../dist/src/store/thread-nice.js')).href;

describe.runIf(process.platform === 'linux')('niceCurrentThread (the build thread lowers its own priority only)', () => {
  it('a worker thread renices itself to 19; the main thread and a sibling worker keep theirs', async () => {
    const mainBefore = niceOf('/proc/thread-self/stat');
    const code = `
      const { parentPort } = require('node:worker_threads');
      const { readlinkSync } = require('node:fs');
      import(${JSON.stringify(built)}).then(({ niceCurrentThread }) => {
        const got = process.env.NICE_IT === '1' ? niceCurrentThread(19) : null;
        parentPort.postMessage({ got, tid: Number(readlinkSync('/proc/thread-self').split('/').pop()) });
        parentPort.once('message', () => process.exit(0));
      });`;
    const start = (niceIt: boolean) => {
      const w = new Worker(code, { eval: true, env: { ...process.env, NICE_IT: niceIt ? '1' : '0' } });
      return new Promise<{ w: Worker; got: number | null; tid: number }>((res, rej) => {
        w.once('message', (m: { got: number | null; tid: number }) => res({ w, ...m }));
        w.once('error', rej);
      });
    };
    const [niced, plain] = await Promise.all([start(true), start(false)]);
    try {
      expect(niced.got).toBe(19);
      expect(niceOf(`/proc/self/task/${niced.tid}/stat`)).toBe(19);
      expect(niceOf(`/proc/self/task/${plain.tid}/stat`)).toBe(mainBefore);
      expect(niceOf('/proc/thread-self/stat')).toBe(mainBefore);
    } finally {
      niced.w.postMessage('bye');
      plain.w.postMessage('bye');
    }
  });
});
