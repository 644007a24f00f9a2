import { lstat, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RagError } from '../errors.js';
import { readSmallFileSafe } from '../fs/safe-fs.js';
import { ACCEPTANCE_MAX_BYTES, parseAcceptance, type AcceptanceSpec } from '../store/acceptance.js';
import { ACCEPTANCE_FILE } from '../store/layout.js';
import type { Chunk } from './split-documents.js';

/**
 * The publisher's side of a version's acceptance questions (`npm run ingest -- --acceptance FILE`,
 * or an acceptance.json at the top of the docs folder): read as untrusted input and validated before
 * anything is written. Every refusal is RAG_INGEST_ACCEPTANCE_INVALID, naming the file and the problem.
 */
export interface AcceptanceInput {
  spec: AcceptanceSpec;
  /** Where it came from (for the CLI's summary). */
  path: string;
}

function invalid(message: string, cause?: unknown): RagError {
  return new RagError('RAG_INGEST_ACCEPTANCE_INVALID', message, cause === undefined ? {} : { cause });
}

/** Read and validate an acceptance file: a regular UTF-8 file of at most 1 MiB, the acceptance schema, no unknown keys. */
export async function readAcceptanceFile(path: string, root?: string): Promise<AcceptanceInput> {
  let text: string;
  try {
    // A path given on the command line may be a link (the operator chose it); what it names must be a regular file.
    const real = root ? path : await realpath(path);
    text = await readSmallFileSafe(real, root ?? dirname(real), ACCEPTANCE_MAX_BYTES, { strictUtf8: true });
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (err as Error).message;
    throw invalid(`acceptance file ${path}: ${why}`, err);
  }
  const spec = parseAcceptance(text, { what: `acceptance file ${path}`, code: 'RAG_INGEST_ACCEPTANCE_INVALID', strict: true });
  return { spec, path };
}

/**
 * The acceptance file to publish with a docs folder: the one given, else `<docs>/acceptance.json`
 * when there is one (it is never ingested as a document: .json is not a document type), else none.
 */
export async function findAcceptanceFile(docsDir: string, given: string | undefined): Promise<AcceptanceInput | null> {
  if (given !== undefined) return readAcceptanceFile(given);
  const inDocs = join(docsDir, ACCEPTANCE_FILE);
  const there = await lstat(inDocs).then(
    () => true,
    () => false,
  );
  return there ? readAcceptanceFile(inDocs, docsDir) : null;
}

/**
 * Every expected id must name something in this version (a chunk id or a document's
 * metadata.source), or the question could never be answered: a typo would publish a version no
 * replica accepts.
 */
export function checkAcceptanceAgainst(input: AcceptanceInput, chunks: ReadonlyArray<Pick<Chunk, 'id'> & { metadata: Record<string, unknown> }>): void {
  const known = new Set<string>();
  for (const c of chunks) {
    known.add(c.id);
    if (typeof c.metadata.source === 'string') known.add(c.metadata.source);
  }
  for (const [i, q] of input.spec.questions.entries()) {
    const missing = q.expected.find((e) => !known.has(e));
    if (missing !== undefined) {
      throw invalid(
        `acceptance file ${input.path} is invalid: questions.${i}.expected: "${missing.slice(0, 200)}" is neither a chunk id nor a document (metadata.source) of these docs, so it can never be found`,
      );
    }
  }
}
