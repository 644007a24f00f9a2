import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** Every audit line in a folder, rotated (gzip) files included. */
export async function readAuditLines(dir: string): Promise<Array<Record<string, any>>> {
  const files = await readdir(dir);
  const lines: Array<Record<string, any>> = [];
  for (const f of files) {
    if (!/^audit.*\.log(\.gz)?$/.test(f)) continue; // rotating-file-stream also keeps a history file
    const raw = await readFile(join(dir, f)).catch(() => null); // renamed by a rotation meanwhile
    if (!raw) continue;
    let text: string;
    try {
      text = f.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
    } catch {
      continue; // a rotated file still being compressed: its lines are read on the next poll
    }
    for (const l of text.split('\n')) if (l.trim()) lines.push(JSON.parse(l));
  }
  return lines;
}
