import { describe, expect, it } from 'vitest';
import { latencyBucket, latencyHistogram as hist, pooledPercentile } from '../../bench/lib/open-load.js';

/** The benchmark's pooled percentile (bench/lib/open-load.ts): windows' latency histograms summed, then ranked. */

describe('pooledPercentile', () => {
  it('is the percentile of all the windows’ requests together, to the bucket’s upper edge', () => {
    const calm = hist(Array.from({ length: 1000 }, (_, i) => 1 + (i % 10) / 10)); // 1.0-1.9 ms
    const stalled = hist([...Array.from({ length: 980 }, () => 2), ...Array.from({ length: 20 }, () => 250.4)]); // 2% at 250 ms
    // Alone, the stalled window's p99 is the stall (2% of its requests); pooled with a calm one the stall is
    // 1% of 2,000 requests: the 1,980th is the last 2-ms one, the 1,981st a stall.
    expect(pooledPercentile([stalled], 99)).toBe(251);
    expect(pooledPercentile([calm, stalled], 99)).toBe(2.05);
    expect(pooledPercentile([calm, stalled], 99.05)).toBe(251);
    expect(pooledPercentile([calm], 50)).toBe(1.45); // the 500th is 1.4 ms: its bucket [1.4, 1.45)
    expect(pooledPercentile([calm], 100)).toBe(1.95);
  });

  it('buckets are 0.05 ms wide below 100 ms and 1 ms above; no requests: NaN', () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.049)).toBe(0);
    expect(latencyBucket(99.99)).toBe(1999);
    expect(latencyBucket(100)).toBe(2000);
    expect(latencyBucket(1234.5)).toBe(3134);
    expect(pooledPercentile([], 99)).toBeNaN();
    expect(pooledPercentile([{}], 99)).toBeNaN();
  });
});
