/* Text loading, tokenization and vocabulary.
 *
 * A corpus is a plain text file with one sentence per line. Two tokenizers:
 *   word: whitespace-separated tokens (PTB style; the literal "<unk>" in PTB maps to NS_UNK_ID),
 *   char: every UTF-8 code point except the line break is a token (spaces included).
 * Lines that are empty or only whitespace are skipped everywhere, and a trailing '\r' (CRLF files)
 * is part of the line break, so building the vocabulary and tokenizing always agree.
 *
 * Errors follow util.h: return -1 (or NULL) with one line in `err`. The functions that take text
 * rather than a path cannot name the file: callers should prefix the path to their message. */
#ifndef NS_CORPUS_H
#define NS_CORPUS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { NS_TOK_WORD = 0, NS_TOK_CHAR = 1 } NsTokenizer;

/* Reserved ids, fixed by the model spec. */
enum { NS_PAD_ID = 0, NS_UNK_ID = 1, NS_EOS_ID = 2 };
#define NS_PAD_TOKEN "<pad>"
#define NS_UNK_TOKEN "<unk>"
#define NS_EOS_TOKEN "<eos>"

/* Reads a whole text file into a malloc'd NUL-terminated buffer (*len excludes the NUL).
 * Errors (one line naming the path): missing, unreadable, a directory, empty or only
 * whitespace, binary (contains NUL bytes or is mostly not valid UTF-8 / printable). */
char *ns_read_text_file(const char *path, size_t *len, char *err);

/* What a corpus file may be: at most max_bytes long, and a regular file unless any_file (a pipe
 * or a device such as /dev/zero would otherwise be read without end). */
typedef struct {
    long max_bytes;
    int any_file;
} NsTextLimits;
#define NS_TEXT_MAX_BYTES_DEFAULT (1L << 30)

/* ns_read_text_file within limits: a larger file, or one that is not a regular file, is one
 * line naming the path and the flag that allows it, read no further than max_bytes + 1. A UTF-8
 * byte-order mark at the start is dropped (it is not part of the first token). */
char *ns_read_text_file_limited(const char *path, const NsTextLimits *lim, size_t *len,
                                char *err);

typedef struct NsVocab {
    int size;        /* number of ids, including the 3 reserved ones */
    char **tokens;   /* id -> NUL-terminated token; [0]="<pad>", [1]="<unk>", [2]="<eos>" */
    int *token_len;  /* id -> strlen(tokens[id]) */
    int32_t *slots;  /* open-addressing hash index: token id or -1 when empty */
    size_t n_slots;  /* power of two, at least 2 * size */
} NsVocab;

/* Builds the vocabulary from training text: ids 0..2 reserved, then tokens by descending count
 * (ties broken by byte order, so it is deterministic), capped so that size <= max_size
 * (max_size >= 4). Tokens that do not fit map to <unk>. The reserved names themselves are never
 * given a new id. The text must not contain NUL bytes. */
int ns_vocab_build(NsVocab *v, const char *text, size_t len, NsTokenizer kind, int max_size,
                   char *err);
/* Rebuilds from a saved list (checkpoint load): tokens[i] for i in [0, n). The first three must
 * be the reserved names and no token may repeat. */
int ns_vocab_from_list(NsVocab *v, char *const *tokens, int n, char *err);
/* Id of the token (len bytes, need not be NUL-terminated), or NS_UNK_ID if unknown. */
int ns_vocab_lookup(const NsVocab *v, const char *tok, size_t len);
void ns_vocab_free(NsVocab *v);

/* Tokenized corpus kept as lines: each non-empty line becomes a sentence of ids followed by
 * NS_EOS_ID. Line i is ids[line_start[i] .. line_start[i+1]) including its EOS, so line_start has
 * n_lines + 1 entries. Ids are never NS_PAD_ID (a literal "<pad>" in the text becomes <unk>), so
 * padding can always be told apart from data. */
typedef struct NsCorpus {
    int32_t *ids;
    size_t n_ids;
    size_t *line_start;
    size_t n_lines;
} NsCorpus;

/* Errors if the text has no non-empty line. */
int ns_corpus_tokenize(NsCorpus *c, const NsVocab *v, NsTokenizer kind, const char *text,
                       size_t len, char *err);
void ns_corpus_free(NsCorpus *c);
/* Fraction of the non-EOS tokens that are <unk> (EOS is structural, never unknown). */
double ns_corpus_unk_rate(const NsCorpus *c);
/* Entropy in nats of the unigram distribution of all corpus tokens, EOS included, since the model
 * predicts EOS too: the loss of the best model that ignores context ("unigram baseline"). */
double ns_corpus_unigram_entropy(const NsCorpus *c, int vocab_size);

#endif
