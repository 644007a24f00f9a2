import { describe, expect, it } from 'vitest';
import { gcPlan, type PointerRecord, type VersionInfo } from '../../src/store/shared-registry.js';

const v = (version: string, createdAt: number, state: VersionInfo['state'] = 'complete'): VersionInfo => ({
  version, collection: `docs--${version}`, state, createdAt, count: 1, checksum: 'x', modelId: 'm', dimension: 3, acceptanceSha256: null,
});
const pointer = (version: string, previous: string | null): PointerRecord => ({ name: 'docs', version, collection: `docs--${version}`, previous, updatedAt: 0, updatedBy: 't' });
const NOW = 1_000_000;
const versions = [v('v1', 1), v('v2', 2), v('v3', 3), v('v4', 4), v('v5', 5)];

describe('gcPlan: what garbage collection may delete', () => {
  it.each([
    ['keeps the newest KEEP_VERSIONS, the pointed and the previous', pointer('v5', 'v4'), [], 2, ['docs--v1', 'docs--v2', 'docs--v3']],
    ['a live replica still on v1 protects v1', pointer('v5', 'v4'), ['v1'], 2, ['docs--v2', 'docs--v3']],
    ['after a rollback the pointed version is old but kept', pointer('v2', 'v5'), [], 1, ['docs--v1', 'docs--v3', 'docs--v4']],
    ['keep 0: only what is pointed at or served', pointer('v5', null), ['v3'], 0, ['docs--v1', 'docs--v2', 'docs--v4']],
    ['no pointer yet: only the keep rule', null, [], 3, ['docs--v1', 'docs--v2']],
  ] as const)('%s', (_what, p, live, keep, want) => {
    expect(gcPlan({ versions, pointer: p, liveServed: new Set(live), keep, now: NOW, buildGraceMs: 1000 })).toEqual(want);
  });

  it('a version still building is left alone during the grace time, collected after', () => {
    const building = [...versions, v('v6', NOW - 10, 'building')];
    expect(gcPlan({ versions: building, pointer: pointer('v5', 'v4'), liveServed: new Set(), keep: 5, now: NOW, buildGraceMs: 1000 })).toEqual([]);
    expect(gcPlan({ versions: building, pointer: pointer('v5', 'v4'), liveServed: new Set(), keep: 5, now: NOW + 5000, buildGraceMs: 1000 })).toEqual(['docs--v6']);
  });

  it('building versions never count toward the kept ones', () => {
    const list = [v('v1', 1), v('v2', 2, 'building')];
    expect(gcPlan({ versions: list, pointer: null, liveServed: new Set(), keep: 1, now: NOW, buildGraceMs: 10 })).toEqual(['docs--v2']);
  });
});
