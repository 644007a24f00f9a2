import { z } from 'zod';
import type { Config } from '../config.js';
import { RagError } from '../errors.js';
import { RETRIEVAL_MODES } from '../rag/hybrid.js';
import type { MetadataFilter } from '../store/chroma-store.js';

const scalar = z.union([z.string(), z.number().finite(), z.boolean()]);
/** Chroma compares a list against one metadata type: `[1, "a"]` is a client error, not a store error. */
const sameTypeList = z
  .array(scalar)
  .min(1)
  .max(1000)
  .refine((list) => list.every((v) => typeof v === typeof list[0]), 'list values must all have the same type (all strings, all numbers or all booleans)');
const operatorValue = z
  .object({
    $eq: scalar,
    $ne: scalar,
    $gt: z.number().finite(),
    $gte: z.number().finite(),
    $lt: z.number().finite(),
    $lte: z.number().finite(),
    $in: sameTypeList,
    $nin: sameTypeList,
  })
  .partial()
  .strict()
  .refine((o) => Object.keys(o).length === 1, 'an operator object needs exactly one of $eq $ne $gt $gte $lt $lte $in $nin');

const FIELD = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

type Filter = { [k: string]: unknown };

/** Deepest `$and`/`$or` nesting a filter may have. */
export const MAX_FILTER_DEPTH = 8;

/** Logical nesting depth of a filter (iterative; the body's JSON depth is capped before this runs). */
export function filterDepth(filter: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[filter, 1]];
  while (stack.length) {
    const [f, d] = stack.pop()!;
    if (f === null || typeof f !== 'object' || Array.isArray(f)) continue;
    max = Math.max(max, d);
    for (const [k, v] of Object.entries(f)) if ((k === '$and' || k === '$or') && Array.isArray(v)) for (const x of v) stack.push([x, d + 1]);
  }
  return max;
}

/** A metadata filter in Chroma's `where` syntax, checked here so a bad one is a 400, not a store error. */
export const filterSchema: z.ZodType<Filter, z.ZodTypeDef, unknown> = z.lazy(() =>
  z
    .unknown()
    .superRefine((f, ctx) => {
      if (filterDepth(f) > MAX_FILTER_DEPTH) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `filter is nested deeper than ${MAX_FILTER_DEPTH} levels` });
    })
    .pipe(filterNode),
);
const filterNode: z.ZodType<Filter> = z.lazy(() =>
  z
    .record(z.string(), z.unknown())
    .superRefine((obj, ctx) => {
      const keys = Object.keys(obj);
      if (keys.length === 0) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'filter must not be empty' });
      for (const key of keys) {
        const value = obj[key];
        if (key === '$and' || key === '$or') {
          const arr = z.array(filterNode).min(2).max(64).safeParse(value);
          if (!arr.success) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `${key} needs an array of at least 2 filters` });
        } else if (key.startsWith('$')) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: `unknown operator ${key}` });
        } else if (!FIELD.test(key)) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'invalid metadata field name' });
        } else if (!scalar.safeParse(value).success && !operatorValue.safeParse(value).success) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [key], message: 'expected a string, number, boolean or an operator object like {"$in": [...]}' });
        }
      }
    }),
);

/** Chroma wants one operator per level: {a:1, b:2} becomes {$and:[{a:1},{b:2}]}. */
export function normaliseFilter(filter: Filter | undefined): MetadataFilter | undefined {
  if (!filter) return undefined;
  const entries = Object.entries(filter).map(([k, v]) =>
    k === '$and' || k === '$or' ? { [k]: (v as Filter[]).map((f) => normaliseFilter(f)) } : { [k]: v },
  );
  return entries.length === 1 ? entries[0] : { $and: entries };
}

export function querySchema(config: Config) {
  return z
    .object({
      question: z
        .string({ required_error: 'question is required', invalid_type_error: 'question must be a string' })
        .trim()
        .min(1, 'question must not be empty')
        .max(config.maxQuestionChars, `question is longer than ${config.maxQuestionChars} characters`),
      k: z
        .number({ invalid_type_error: 'k must be a number' })
        .int('k must be an integer')
        .min(1, 'k must be at least 1')
        .max(config.maxK, `k must be at most ${config.maxK}`)
        .default(config.defaultK),
      filter: filterSchema.optional(),
      mode: z.enum(RETRIEVAL_MODES, { errorMap: () => ({ message: 'mode must be one of dense, keyword, hybrid' }) }).default('hybrid'),
      contains: z.string().min(1, 'contains must not be empty').max(200, 'contains is longer than 200 characters').optional(),
    })
    .strict();
}

const textPart = z.object({ type: z.literal('text'), text: z.string() }).passthrough();
const message = z
  .object({
    role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
    content: z.union([z.string(), z.array(textPart), z.null()]).optional(),
  })
  .passthrough();

export function chatSchema(config: Config) {
  return z
    .object({
      model: z.string().max(200).optional(),
      messages: z.array(message).min(1, 'messages must not be empty').max(256),
      stream: z.boolean().optional().default(false),
      temperature: z.number().min(0).max(2).optional().nullable(),
      max_tokens: z.number().int().positive().optional().nullable(),
      max_completion_tokens: z.number().int().positive().optional().nullable(),
      stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).optional().nullable(),
      stream_options: z.object({ include_usage: z.boolean().optional() }).passthrough().optional().nullable(),
      n: z.number().int().min(1).max(128).optional().nullable(),
      logprobs: z.boolean().optional().nullable(),
      top_logprobs: z.number().int().min(0).max(20).optional().nullable(),
      // Retrieval knobs as extra fields (the OpenAI SDK passes unknown fields through).
      k: z.number().int().min(1).max(config.maxK).optional(),
      filter: filterSchema.optional(),
      mode: z.enum(RETRIEVAL_MODES).optional(),
      contains: z.string().min(1).max(200).optional(),
    })
    .passthrough();
}

export const embeddingsSchema = z
  .object({
    model: z.string({ required_error: 'model is required' }).min(1).max(200),
    input: z.union([
      z.string().min(1, 'input must not be empty').max(100_000),
      z.array(z.string().min(1, 'input strings must not be empty').max(100_000)).min(1, 'input must not be empty').max(2048),
    ]),
    encoding_format: z.enum(['float', 'base64']).optional().default('float'),
    dimensions: z.number().int().positive().optional(),
    user: z.string().optional(),
  })
  .strict();

/** Parse a body with a schema; failures become one RAG_HTTP_VALIDATION naming the field. */
export function parseBody<T extends z.ZodTypeAny>(schema: T, body: unknown): z.output<T> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new RagError('RAG_HTTP_VALIDATION', 'the request body must be a JSON object (send Content-Type: application/json)');
  }
  const res = schema.safeParse(body);
  if (!res.success) {
    const issue = res.error.issues[0]!;
    const path = issue.path.join('.');
    const message = issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message;
    throw new RagError('RAG_HTTP_VALIDATION', path ? `${path}: ${message}` : message, { cause: res.error });
  }
  return res.data;
}
