import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/harness.js';

/** Issue 16: server-sent events have one helper (src/http/sse.ts), used by every streaming route. */
describe('server-sent events', () => {
  it('no route writes an event stream by hand: only src/http/sse.ts sets text/event-stream or writes `data:` lines', () => {
    const dir = join(ROOT, 'src', 'http');
    const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && f !== 'sse.ts');
    expect(files.length).toBeGreaterThan(5);
    const offenders = files.filter((f) => {
      const text = readFileSync(join(dir, f), 'utf8');
      return /setHeader\([^)]*text\/event-stream/.test(text) || /write\(\s*[`'"]data: /.test(text);
    });
    expect(offenders).toEqual([]);
    const users = files.filter((f) => readFileSync(join(dir, f), 'utf8').includes('openEventStream('));
    expect(users.sort()).toEqual(['routes-admin.ts', 'routes-documents.ts', 'routes-openai.ts']);
  });
});
