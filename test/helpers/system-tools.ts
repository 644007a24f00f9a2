import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian's chromium, which the web console test drives through playwright-core. */
export const CHROMIUM = '/usr/bin/chromium';

const HOW = 'run `npm run setup:test-tools` (scripts/install-test-tools.sh: Debian packages, needs root) or install it yourself';

/**
 * A system tool a test drives for real. Tests never install system packages (set-up does):
 * a missing tool fails the test with a message that says how to get it, never a skip.
 */
export function requireTool(tool: 'rsync' | 'chromium'): string {
  if (tool === 'chromium') {
    if (!existsSync(CHROMIUM)) throw new Error(`chromium is not installed (${CHROMIUM} is missing): ${HOW}`);
    return CHROMIUM;
  }
  try {
    return execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${tool} is not installed (not on PATH): ${HOW}`);
  }
}
