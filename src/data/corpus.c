#include "corpus.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------------------------
 * UTF-8 and whitespace helpers */

static int is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Length (1..4) of the valid UTF-8 code point at s, or 0 if the bytes there are not valid
 * UTF-8 (stray continuation byte, truncated sequence, overlong form, surrogate, > U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;  /* overlong */
        if (c == 0xED) hi = 0x9F;  /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;  /* overlong */
        if (c == 0xF4) hi = 0x8F;  /* beyond U+10FFFF */
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

/* ------------------------------------------------------------------------------------------
 * Reading a text file */

/* Reads at most max bytes (and one more, so the caller sees that there was more). */
static char *read_all(FILE *f, size_t max, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = ns_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = ns_xrealloc(buf, cap);
        }
        size_t want = cap - 1 - n;
        if (want > max + 1 - n)
            want = max + 1 - n;
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (got == 0 || n > max)
            break;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Before anything is read: what stat says about the path. A FIFO is refused here because
 * opening it would wait for a writer. */
static int check_corpus_path(const char *path, const NsTextLimits *lim, char *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return ns_fail(err, "corpus '%s': no such file; check the path", path);
        return ns_fail(err, "corpus '%s': cannot access it (%s); check the path and "
                            "permissions", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode))
        return ns_fail(err, "corpus '%s': is a directory; give a text file with one sentence "
                            "per line", path);
    if (!S_ISREG(st.st_mode) && !lim->any_file)
        return ns_fail(err, "corpus '%s': is not a regular file (a pipe, a device or a socket); "
                            "give a text file, or --corpus-any-file to read it anyway", path);
    if (S_ISREG(st.st_mode) && st.st_size > lim->max_bytes)
        return ns_fail(err, "corpus '%s': %lld bytes, more than --max-corpus-bytes %ld; give a "
                            "smaller file or a larger --max-corpus-bytes", path,
                       (long long)st.st_size, lim->max_bytes);
    return 0;
}

/* A UTF-8 byte-order mark is an encoding marker, not text. */
static void drop_bom(char *text, size_t *n)
{
    if (*n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        memmove(text, text + 3, *n - 3 + 1);
        *n -= 3;
    }
}

/* A file is treated as binary if it has any NUL byte, or if more than a quarter of it is invalid
 * UTF-8 or control characters. The threshold tolerates the odd Latin-1 accent in an otherwise
 * fine text while still rejecting compressed or executable files. */
static int looks_binary(const char *text, size_t len)
{
    if (memchr(text, '\0', len))
        return 1;
    const unsigned char *s = (const unsigned char *)text;
    size_t bad = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_len(s + i, len - i);
        if (n == 0 || (s[i] < 0x20 && !is_space(s[i])) || s[i] == 0x7F) {
            bad++;
            n = 1;
        }
        i += n;
    }
    return bad * 4 > len;
}

/* UTF-16 text (a BOM, or NUL bytes at every other position of mostly ASCII text) is text in
 * another encoding, not binary: name it, and how to convert it. Returns "LE", "BE" or NULL. */
static const char *utf16_kind(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    if (len >= 2 && s[0] == 0xFF && s[1] == 0xFE)
        return "LE";
    if (len >= 2 && s[0] == 0xFE && s[1] == 0xFF)
        return "BE";
    size_t pairs = len / 2, zero_odd = 0, zero_even = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        zero_even += s[i] == 0 && s[i + 1] != 0;
        zero_odd += s[i + 1] == 0 && s[i] != 0;
    }
    if (pairs >= 2 && zero_odd * 10 >= pairs * 9)
        return "LE";
    if (pairs >= 2 && zero_even * 10 >= pairs * 9)
        return "BE";
    return NULL;
}

static int only_whitespace(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_space((unsigned char)text[i]))
            return 0;
    return 1;
}

char *ns_read_text_file(const char *path, size_t *len, char *err)
{
    NsTextLimits lim = {NS_TEXT_MAX_BYTES_DEFAULT, 0};
    return ns_read_text_file_limited(path, &lim, len, err);
}

char *ns_read_text_file_limited(const char *path, const NsTextLimits *lim, size_t *len,
                                char *err)
{
    if (check_corpus_path(path, lim, err) < 0)
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ns_fail(err, "corpus '%s': cannot open it for reading (%s); check its permissions", path,
                strerror(errno));
        return NULL;
    }
    size_t n = 0;
    char *text = read_all(f, (size_t)lim->max_bytes, &n);
    int read_error = ferror(f);
    fclose(f);
    if (!read_error && n > (size_t)lim->max_bytes) {
        free(text);
        ns_fail(err, "corpus '%s': longer than --max-corpus-bytes %ld; give a smaller file or a "
                     "larger --max-corpus-bytes", path, lim->max_bytes);
        return NULL;
    }
    drop_bom(text, &n);
    const char *problem = NULL;
    if (read_error)
        problem = "reading failed (I/O error); check that the file is a readable regular file";
    else if (n == 0)
        problem = "file is empty; give a text file with one sentence per line";
    else if (utf16_kind(text, n))
        problem = !strcmp(utf16_kind(text, n), "LE")
                      ? "file is UTF-16 (little-endian) text; convert it to UTF-8 (iconv -f "
                        "UTF-16 -t UTF-8 FILE > FILE.txt) and give that"
                      : "file is UTF-16 (big-endian) text; convert it to UTF-8 (iconv -f "
                        "UTF-16 -t UTF-8 FILE > FILE.txt) and give that";
    else if (only_whitespace(text, n))
        problem = "file contains only whitespace; give a text file with one sentence per line";
    else if (looks_binary(text, n))
        problem = "file looks binary (NUL bytes or mostly invalid UTF-8); give a plain UTF-8 "
                  "text file with one sentence per line";
    if (problem) {
        free(text);
        ns_fail(err, "corpus '%s': %s", path, problem);
        return NULL;
    }
    *len = n;
    return text;
}

/* ------------------------------------------------------------------------------------------
 * Lines and tokens. Vocabulary building and tokenization both walk the text with these two
 * functions, so they can never disagree about what a token is. */

/* Finds the next line holding at least one non-space byte, starting at *pos. A trailing '\r' is
 * dropped (CRLF files). Returns 0 at the end of the text. */
static int next_line(const char *text, size_t len, size_t *pos, const char **line,
                     size_t *line_len)
{
    while (*pos < len) {
        const char *start = text + *pos;
        const char *nl = memchr(start, '\n', len - *pos);
        size_t n = nl ? (size_t)(nl - start) : len - *pos;
        *pos += n + (nl ? 1 : 0);
        if (n > 0 && start[n - 1] == '\r')
            n--;
        if (!only_whitespace(start, n)) {
            *line = start;
            *line_len = n;
            return 1;
        }
    }
    return 0;
}

/* Finds the next token of the line starting at *pos. Returns 0 at the end of the line.
 * In char mode an invalid UTF-8 byte becomes a one-byte token of its own. */
static int next_token(NsTokenizer kind, const char *line, size_t n, size_t *pos,
                      const char **tok, size_t *tok_len)
{
    size_t i = *pos;
    if (kind == NS_TOK_CHAR) {
        if (i >= n)
            return 0;
        size_t k = utf8_len((const unsigned char *)line + i, n - i);
        *tok = line + i;
        *tok_len = k ? k : 1;
        *pos = i + *tok_len;
        return 1;
    }
    while (i < n && is_space((unsigned char)line[i]))
        i++;
    if (i >= n)
        return 0;
    size_t start = i;
    while (i < n && !is_space((unsigned char)line[i]))
        i++;
    *tok = line + start;
    *tok_len = i - start;
    *pos = i;
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Hashing */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29); /* the low bits pick the slot: mix the high bits into them */
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p *= 2;
    return p;
}

static const char *const reserved_tokens[3] = {NS_PAD_TOKEN, NS_UNK_TOKEN, NS_EOS_TOKEN};

static int is_reserved(const char *s, size_t len)
{
    for (int i = 0; i < 3; i++)
        if (strlen(reserved_tokens[i]) == len && memcmp(reserved_tokens[i], s, len) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Token counting (for building the vocabulary). Keys point into the text, nothing is copied. */

typedef struct {
    const char *s;
    size_t len;
    long count;
} TokenCount;

typedef struct {
    TokenCount *items;
    size_t n, cap;
    int32_t *slots; /* index into items, -1 = empty */
    size_t n_slots;
} CountTable;

static size_t count_probe(const CountTable *t, const char *s, size_t len)
{
    size_t mask = t->n_slots - 1;
    size_t i = hash_bytes(s, len) & mask;
    while (t->slots[i] >= 0) {
        const TokenCount *c = &t->items[t->slots[i]];
        if (c->len == len && memcmp(c->s, s, len) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

static void count_rehash(CountTable *t, size_t n_slots)
{
    free(t->slots);
    t->n_slots = n_slots;
    t->slots = ns_xmalloc(n_slots * sizeof(int32_t));
    memset(t->slots, 0xff, n_slots * sizeof(int32_t)); /* all -1 */
    for (size_t k = 0; k < t->n; k++)
        t->slots[count_probe(t, t->items[k].s, t->items[k].len)] = (int32_t)k;
}

static void count_add(CountTable *t, const char *s, size_t len)
{
    if ((t->n + 1) * 2 > t->n_slots) /* keep the load factor <= 1/2 so probes stay short */
        count_rehash(t, t->n_slots * 2);
    size_t i = count_probe(t, s, len);
    if (t->slots[i] >= 0) {
        t->items[t->slots[i]].count++;
        return;
    }
    if (t->n == t->cap) {
        t->cap *= 2;
        t->items = ns_xrealloc(t->items, t->cap * sizeof(TokenCount));
    }
    t->items[t->n] = (TokenCount){s, len, 1};
    t->slots[i] = (int32_t)t->n++;
}

/* Descending count, then byte order (a prefix sorts first), so the vocabulary is deterministic. */
static int compare_counts(const void *pa, const void *pb)
{
    const TokenCount *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, n);
    if (c != 0)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

static void count_tokens(CountTable *t, const char *text, size_t len, NsTokenizer kind)
{
    t->cap = 1024;
    t->n = 0;
    t->items = ns_xmalloc(t->cap * sizeof(TokenCount));
    t->slots = NULL;
    count_rehash(t, 4096);
    size_t pos = 0, line_len;
    const char *line;
    while (next_line(text, len, &pos, &line, &line_len)) {
        size_t lpos = 0, tok_len;
        const char *tok;
        while (next_token(kind, line, line_len, &lpos, &tok, &tok_len))
            if (!is_reserved(tok, tok_len))
                count_add(t, tok, tok_len);
    }
}

/* ------------------------------------------------------------------------------------------
 * Vocabulary */

static size_t vocab_probe(const NsVocab *v, const char *s, size_t len)
{
    size_t mask = v->n_slots - 1;
    size_t i = hash_bytes(s, len) & mask;
    while (v->slots[i] >= 0) {
        int id = v->slots[i];
        if ((size_t)v->token_len[id] == len && memcmp(v->tokens[id], s, len) == 0)
            break;
        i = (i + 1) & mask;
    }
    return i;
}

static void vocab_alloc(NsVocab *v, int size)
{
    v->size = size;
    v->tokens = ns_xcalloc((size_t)size, sizeof(char *));
    v->token_len = ns_xcalloc((size_t)size, sizeof(int));
    v->n_slots = pow2_at_least(2 * (size_t)size);
    v->slots = ns_xmalloc(v->n_slots * sizeof(int32_t));
    memset(v->slots, 0xff, v->n_slots * sizeof(int32_t));
}

static void vocab_set(NsVocab *v, int id, const char *s, size_t len)
{
    v->tokens[id] = ns_xmalloc(len + 1);
    memcpy(v->tokens[id], s, len);
    v->tokens[id][len] = '\0';
    v->token_len[id] = (int)len;
}

/* Inserts every id into the hash index. Returns the id of the first duplicate, or -1. */
static int vocab_index(NsVocab *v)
{
    for (int id = 0; id < v->size; id++) {
        size_t i = vocab_probe(v, v->tokens[id], (size_t)v->token_len[id]);
        if (v->slots[i] >= 0)
            return id;
        v->slots[i] = id;
    }
    return -1;
}

int ns_vocab_build(NsVocab *v, const char *text, size_t len, NsTokenizer kind, int max_size,
                   char *err)
{
    memset(v, 0, sizeof(*v));
    if (max_size < 4)
        return ns_fail(err, "vocabulary size %d is too small: 3 ids are reserved "
                            "(<pad>, <unk>, <eos>), so use --vocab-size 4 or more", max_size);
    const char *nul = memchr(text, '\0', len);
    if (nul)
        return ns_fail(err, "corpus text contains a NUL byte at offset %zu; give a plain text "
                            "file", (size_t)(nul - text));
    CountTable t;
    count_tokens(&t, text, len, kind);
    if (t.n == 0) {
        free(t.items);
        free(t.slots);
        return ns_fail(err, "corpus text has no tokens; give a text file with one sentence "
                            "per line");
    }
    qsort(t.items, t.n, sizeof(TokenCount), compare_counts);
    size_t keep = t.n < (size_t)max_size - 3 ? t.n : (size_t)max_size - 3;
    vocab_alloc(v, (int)(3 + keep));
    for (int id = 0; id < 3; id++)
        vocab_set(v, id, reserved_tokens[id], strlen(reserved_tokens[id]));
    for (size_t k = 0; k < keep; k++)
        vocab_set(v, (int)(3 + k), t.items[k].s, t.items[k].len);
    vocab_index(v); /* counted tokens are distinct and never reserved: no duplicate possible */
    free(t.items);
    free(t.slots);
    return 0;
}

int ns_vocab_from_list(NsVocab *v, char *const *tokens, int n, char *err)
{
    memset(v, 0, sizeof(*v));
    if (n < 3)
        return ns_fail(err, "saved vocabulary has %d tokens, fewer than the 3 reserved ones; "
                            "the checkpoint is corrupt", n);
    for (int id = 0; id < 3; id++)
        if (!tokens[id] || strcmp(tokens[id], reserved_tokens[id]) != 0)
            return ns_fail(err, "saved vocabulary: token %d is '%s', expected '%s'; the "
                                "checkpoint is corrupt", id, tokens[id] ? tokens[id] : "(null)",
                           reserved_tokens[id]);
    for (int id = 3; id < n; id++)
        if (!tokens[id] || tokens[id][0] == '\0')
            return ns_fail(err, "saved vocabulary: token %d is empty; the checkpoint is corrupt",
                           id);
    vocab_alloc(v, n);
    for (int id = 0; id < n; id++)
        vocab_set(v, id, tokens[id], strlen(tokens[id]));
    int dup = vocab_index(v);
    if (dup >= 0) {
        ns_fail(err, "saved vocabulary: token %d ('%s') appears twice; the checkpoint is corrupt",
                dup, tokens[dup]);
        ns_vocab_free(v);
        return -1;
    }
    return 0;
}

int ns_vocab_lookup(const NsVocab *v, const char *tok, size_t len)
{
    int id = v->slots[vocab_probe(v, tok, len)];
    return id >= 0 ? id : NS_UNK_ID;
}

void ns_vocab_free(NsVocab *v)
{
    if (v->tokens)
        for (int id = 0; id < v->size; id++)
            free(v->tokens[id]);
    free(v->tokens);
    free(v->token_len);
    free(v->slots);
    memset(v, 0, sizeof(*v));
}

/* ------------------------------------------------------------------------------------------
 * Corpus */

/* One walk over the text. With ids == NULL it only counts, so the caller can allocate exactly. */
static void tokenize_pass(const NsVocab *v, NsTokenizer kind, const char *text, size_t len,
                          int32_t *ids, size_t *line_start, size_t *n_ids, size_t *n_lines)
{
    size_t pos = 0, line_len, ni = 0, nl = 0;
    const char *line;
    while (next_line(text, len, &pos, &line, &line_len)) {
        if (line_start)
            line_start[nl] = ni;
        size_t lpos = 0, tok_len;
        const char *tok;
        while (next_token(kind, line, line_len, &lpos, &tok, &tok_len)) {
            if (ids) {
                int id = ns_vocab_lookup(v, tok, tok_len);
                ids[ni] = id == NS_PAD_ID ? NS_UNK_ID : id; /* data must never look like padding */
            }
            ni++;
        }
        if (ids)
            ids[ni] = NS_EOS_ID;
        ni++;
        nl++;
    }
    if (line_start)
        line_start[nl] = ni;
    *n_ids = ni;
    *n_lines = nl;
}

int ns_corpus_tokenize(NsCorpus *c, const NsVocab *v, NsTokenizer kind, const char *text,
                       size_t len, char *err)
{
    memset(c, 0, sizeof(*c));
    size_t n_ids, n_lines;
    tokenize_pass(v, kind, text, len, NULL, NULL, &n_ids, &n_lines);
    if (n_lines == 0)
        return ns_fail(err, "corpus text has no non-empty line; give a text file with one "
                            "sentence per line");
    c->ids = ns_xmalloc(n_ids * sizeof(int32_t));
    c->line_start = ns_xmalloc((n_lines + 1) * sizeof(size_t));
    tokenize_pass(v, kind, text, len, c->ids, c->line_start, &c->n_ids, &c->n_lines);
    return 0;
}

void ns_corpus_free(NsCorpus *c)
{
    free(c->ids);
    free(c->line_start);
    memset(c, 0, sizeof(*c));
}

double ns_corpus_unk_rate(const NsCorpus *c)
{
    size_t unk = 0, words = 0;
    for (size_t i = 0; i < c->n_ids; i++) {
        if (c->ids[i] == NS_EOS_ID)
            continue;
        words++;
        unk += c->ids[i] == NS_UNK_ID;
    }
    return words ? (double)unk / (double)words : 0.0;
}

double ns_corpus_unigram_entropy(const NsCorpus *c, int vocab_size)
{
    if (c->n_ids == 0 || vocab_size <= 0)
        return 0.0;
    size_t *counts = ns_xcalloc((size_t)vocab_size, sizeof(size_t));
    size_t total = 0;
    for (size_t i = 0; i < c->n_ids; i++) {
        if (c->ids[i] >= 0 && c->ids[i] < vocab_size) {
            counts[c->ids[i]]++;
            total++;
        }
    }
    double h = 0.0;
    for (int id = 0; id < vocab_size; id++) {
        if (counts[id] == 0)
            continue;
        double p = (double)counts[id] / (double)total;
        h -= p * log(p);
    }
    free(counts);
    return h;
}
