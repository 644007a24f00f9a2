import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

/**
 * The oldest Node the project declares (package.json `engines.node`) runs everything the lock installs: a
 * dependency that needs a newer Node (as @langchain/classic 1.0.50's nested @langchain/openai 1.6.0, `>=22`,
 * once did) fails this, before an install on Node 20 warns EBADENGINE or a module breaks at runtime.
 */
const ROOT = join(import.meta.dirname, '..', '..');
const read = (f: string) => JSON.parse(readFileSync(join(ROOT, f), 'utf8')) as Record<string, any>;

describe('engines', () => {
  it("every package in package-lock.json accepts the oldest Node of the project's engines.node", () => {
    const declared = read('package.json').engines?.node as string;
    const oldest = semver.minVersion(declared);
    expect(oldest, `package.json engines.node ${declared}`).not.toBeNull();
    const lock = read('package-lock.json');
    const refuse = Object.entries(lock.packages as Record<string, { engines?: { node?: unknown } }>).flatMap(([path, p]) =>
      typeof p.engines?.node === 'string' && !semver.satisfies(oldest!, p.engines.node) ? [`${path} needs node ${p.engines.node}`] : [],
    );
    expect(refuse, `with node ${oldest!.version}`).toEqual([]);
  });
});
