import { z } from 'zod';
import { RagError, type ErrorCode } from '../errors.js';

/**
 * A store version's own quality gate: labelled questions and the recall@k they must reach. A local
 * version ships it as acceptance.json (listed in its manifest); a version on a shared Chroma has it
 * as a registry record whose sha256 is one of the version's facts. One schema for both, parsed
 * here; the loader runs it (src/reload/loader.ts, the `accept` phase).
 */
export const ACCEPTANCE_MAX_BYTES = 1 << 20;

export interface AcceptanceSpec {
  k: number;
  minRecall: number;
  questions: Array<{ question: string; expected: string[] }>;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * `strict` is the publisher's reading (a person is there to fix the file): unknown keys (a typo such
 * as "minrecall" or "K" would silently change the gate) and text with lone UTF-16 surrogates are
 * refused, and expected ids are bounded. The loader reads what was published, leniently, as before.
 */
function acceptanceSchema(strict: boolean) {
  const text = (max: number) => {
    const s = z.string().min(1).max(max);
    return strict ? s.refine((v) => !LONE_SURROGATE.test(v), 'contains a lone UTF-16 surrogate (not valid Unicode text)') : s;
  };
  const obj = <T extends z.ZodRawShape>(shape: T) => (strict ? z.object(shape).strict() : z.object(shape));
  return obj({
    k: z.number().int().min(1).max(100).default(5),
    minRecall: z.number().min(0).max(1),
    questions: z
      .array(obj({ question: text(4000), expected: z.array(strict ? text(1000) : z.string().min(1)).min(1).max(strict ? 100 : Number.MAX_SAFE_INTEGER) }))
      .min(1)
      .max(1000),
  });
}

/** Parse acceptance questions from text; every problem is `code` with what and where. */
export function parseAcceptance(text: string, options: { what: string; code: ErrorCode; strict?: boolean }): AcceptanceSpec {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new RagError(options.code, `${options.what} is not valid JSON`, { cause });
  }
  const parsed = acceptanceSchema(options.strict ?? false).safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new RagError(options.code, `${options.what} is invalid: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'unknown problem'}`);
  }
  return parsed.data as AcceptanceSpec;
}

/** The one serialisation that is published and hashed (known keys only, in a fixed order). */
export function canonicalAcceptance(spec: AcceptanceSpec): string {
  return JSON.stringify({ k: spec.k, minRecall: spec.minRecall, questions: spec.questions.map((q) => ({ question: q.question, expected: q.expected })) });
}
