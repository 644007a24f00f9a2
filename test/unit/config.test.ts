import { describe, expect, it } from 'vitest';
import { loadConfig, configTable } from '../../src/config.js';

describe('config', () => {
  it('names the env variable of a bad value', () => {
    expect(() => loadConfig({ PORT: 'abc' })).toThrow(/PORT: Expected number, received nan/);
    expect(() => loadConfig({ WATCH: 'maybe' })).toThrow(/WATCH: expected true\/false, got "maybe"/);
    expect(() => loadConfig({ LLM_BASE_URL: 'ftp://x' })).toThrow(/LLM_BASE_URL: expected an http\(s\) URL/);
    expect(() => loadConfig({ DEFAULT_K: '60' })).toThrow(/DEFAULT_K \(60\) is larger than MAX_K \(50\)/);
    const cfg = loadConfig({});
    expect(cfg.port).toBe(8080);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(configTable()).toContain('| `MAX_CONCURRENT` | `64` |');
  });
});
