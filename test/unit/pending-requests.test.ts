import { afterEach, describe, expect, it, vi } from 'vitest';
import { PendingRequests } from '../../src/pending-requests.js';

describe('PendingRequests (answers by id, each with a deadline)', () => {
  afterEach(() => vi.useRealTimers());

  it('an answer settles its own request only, and a late or unknown answer is refused', async () => {
    const p = new PendingRequests<string>();
    const sent: number[] = [];
    const a = p.open(1000, () => new Error('timeout'), (id) => sent.push(id));
    const b = p.open(1000, () => new Error('timeout'), (id) => sent.push(id));
    expect(sent).toEqual([1, 2]);
    expect(p.size).toBe(2);
    expect(p.resolve(2, 'two')).toBe(true);
    expect(p.resolve(2, 'again')).toBe(false);
    expect(p.resolve(99, 'nobody')).toBe(false);
    expect(p.reject(1, new Error('one failed'))).toBe(true);
    await expect(b).resolves.toBe('two');
    await expect(a).rejects.toThrow('one failed');
    expect(p.size).toBe(0);
  });

  it('a request with no answer is dropped at its deadline with the error onTimeout makes', async () => {
    vi.useFakeTimers();
    const p = new PendingRequests<number>();
    let sentId = 0;
    const r = p.open(50, () => new Error('no answer within 50 ms'), (id) => (sentId = id));
    const settled = expect(r).rejects.toThrow('no answer within 50 ms');
    await vi.advanceTimersByTimeAsync(49);
    expect(p.size).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await settled;
    expect(p.size).toBe(0);
    expect(p.resolve(sentId, 7)).toBe(false); // the answer came too late
  });

  it('rejectAll fails every waiting request and clears their timers', async () => {
    vi.useFakeTimers();
    const p = new PendingRequests<number>();
    const all = [1, 2, 3].map(() => p.open(1000, () => new Error('timeout'), () => undefined));
    p.rejectAll(new Error('the other side is gone'));
    for (const r of all) await expect(r).rejects.toThrow('the other side is gone');
    expect(p.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
