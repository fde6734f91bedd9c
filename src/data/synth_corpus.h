/* The embedded default corpus: a deterministic generator of a small synthetic language, so that
 * normscope runs with no data files. See the comment at the top of synth_corpus.c for the
 * design of the language.
 *
 * The lexicon and grammar are fixed; the seed only drives which sentences are sampled. So the
 * training text (seed) and the validation text (seed + 1) share one vocabulary while being
 * different samples of the same language. */
#ifndef NS_SYNTH_CORPUS_H
#define NS_SYNTH_CORPUS_H

#include <stddef.h>
#include <stdint.h>

/* Writes about `target_bytes` of text (whole sentences, one per line, words separated by single
 * spaces, ending in '\n'; at least one sentence) into a malloc'd NUL-terminated string and sets
 * *len to its length. Same seed => byte-identical text on every machine: only integer arithmetic
 * is used. Never fails (allocation failure aborts, as everywhere in normscope). */
char *ns_synth_corpus(uint64_t seed, size_t target_bytes, size_t *len);

#endif
