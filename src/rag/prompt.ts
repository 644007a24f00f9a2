import { ChatPromptTemplate } from '@langchain/core/prompts';
import type { Source } from './sources.js';

export const ragPrompt = ChatPromptTemplate.fromMessages([
  [
    'system',
    'You answer questions using only the numbered context passages below. Cite the passages you use with ' +
      'their numbers in square brackets, like [1] or [2][3]. If the passages do not contain the answer, say so ' +
      'plainly instead of guessing.\n\nContext:\n{context}',
  ],
  ['human', '{question}'],
]);

export function formatContext(sources: Source[]): string {
  return sources
    .map((s, i) => `[${i + 1}] (source: ${String(s.metadata.source ?? s.id)})\n${s.text}`)
    .join('\n\n');
}
