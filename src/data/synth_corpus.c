/* The synthetic language of the default corpus
 * =============================================
 *
 * Goal: text that a small Transformer can learn a lot about in minutes, yet that keeps the
 * features that make real language modeling interesting, so normalization schemes can be
 * compared without downloading anything.
 *
 * Lexicon. Pseudo-words built from syllables (onset + vowel + optional coda, e.g. "brai",
 * "tolund"). Open classes are generated with a FIXED seed, independent of the corpus seed, so
 * training text (seed) and validation text (seed + 1) share the vocabulary:
 *   nouns (1800 stems)      singular = stem, plural = stem + "i" (or + "s" after a vowel)
 *   verbs (700 stems)       3sg present = stem + "et", plural present = stem + "un",
 *                           past = stem + "ed" (past shows no agreement, as in English)
 *   adjectives (500 stems)  adjective = stem, adverb = stem + "li" (for the first 160)
 * Frequent words get shorter stems (Zipf's law of abbreviation). Closed classes are short
 * hand-written words: determiners marked singular/plural/either, prepositions, conjunctions,
 * subordinators, pronouns, the complementizer "ke", the relative pronoun "ki", negation "non".
 * Every surface form is distinct: about 6.4k word types in all.
 *
 * Frequencies. Within every class the word of rank r is drawn with weight 1/(r+1) (Zipf with
 * exponent 1, computed as 2^32 / (r + 1) in integers). Merging several Zipf(1) classes gives a
 * corpus-wide rank-frequency curve that is again close to slope -1.
 *
 * Grammar (probabilities in percent, depth-limited recursion):
 *   S      -> (Sub Clause)_10 Clause (Conj Clause)*_20 (Sub Clause)_12
 *   Clause -> Subj[num] VP[num]                    num = plural with 35%
 *   Subj   -> Pron[num] 15% | NP[num]
 *   NP[n]  -> Det[n] Adj{0..3} N[n] (PP)_18 (ki VP[n])_8
 *   PP     -> Prep NP[any]
 *   VP[n]  -> (non)_6 V[n] Frame (PP)_15 (Adv)_10
 *   Frame  -> NP (transitive verbs) | Adv or PP (intransitive) | ke Clause (verbs of saying)
 * Agreement: determiner and noun agree in number; the verb agrees with its subject's head noun
 * even across an intervening PP or relative clause ("the dog near the cats runs"), and a
 * relative clause's verb agrees with the noun it modifies. These long-range dependencies are
 * what separates a good model from an n-gram model. Sentences have 4..64 words (longer samples
 * are redrawn); most have 6..20, with a long tail from coordination and embedding.
 *
 * Topics. There are 16 topics. Apart from the 24 most frequent words of each open class, every
 * noun, verb and adjective has a home topic. A sentence keeps the previous sentence's topic with
 * 75% (so documents are topically coherent across lines) and otherwise picks a new one; nouns,
 * verbs and adjectives are drawn from the topic's own Zipf list with 55/45/40% and from the
 * global list otherwise. Topics are uniform, so the corpus-wide frequencies stay Zipfian.
 *
 * Determinism: only xoshiro (util.c) and integer arithmetic are used, so the same seed gives
 * byte-identical text everywhere. */
#include "synth_corpus.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

enum {
    N_NOUNS = 1800,
    N_VERBS = 700,
    N_ADJS = 500,
    N_ADVS = 160,
    N_TOPICS = 16,
    N_GENERAL = 24,  /* the most frequent words of each open class belong to every topic */
    WMAX = 24,       /* longest word + NUL: 3 syllables of <= 6 letters + 2-letter suffix */
    MIN_WORDS = 4,
    MAX_WORDS = 64,  /* longer samples are redrawn */
    MAX_DEPTH = 3,   /* limit on phrase embedding */
    SET_SLOTS = 1 << 14,
};
_Static_assert(2 * (2 * N_NOUNS + 3 * N_VERBS + 2 * N_ADJS + 64) <= SET_SLOTS,
               "surface-form set must stay at most half full");

#define LEXICON_SEED 0x6e6f726d73636f70ULL /* fixed: every corpus seed shares one lexicon */

enum { SG = 0, PL = 1, ANY = 2 };
enum { TRANSITIVE, INTRANSITIVE, SENTENTIAL };

typedef struct {
    const char *word;
    int number;
} Determiner;

/* Closed classes, most frequent first. */
static const Determiner determiners[] = {
    {"lo", ANY}, {"un", SG}, {"tes", PL}, {"sa", SG}, {"mai", PL},
    {"vos", ANY}, {"ogni", SG}, {"alcu", PL}, {"nul", SG},
};
static const char *const prepositions[] = {"de", "a", "in", "kon", "per", "sur",
                                           "sot", "tra", "dopo", "senz", "vers", "pres"};
static const char *const conjunctions[] = {"e", "ma", "o", "poi"};
static const char *const subordinators[] = {"kuan", "perke", "se", "mentre", "prima"};
static const char *const pronouns[2][3] = {{"mi", "tu", "lei"}, {"noi", "voi", "lor"}};
static const char *const COMPLEMENTIZER = "ke", *const RELATIVE = "ki", *const NEGATION = "non";

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *const onsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p",
                                     "r", "s", "t", "v", "z", "sh", "ch", "th", "tr",
                                     "pl", "gr", "st", "br", "kl", "dr", "fl"};
static const char *const vowels[] = {"a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ie"};
static const char *const final_codas[] = {"", "", "", "", "n", "r", "l", "s", "m", "k", "nd",
                                          "st"};
static const char *const medial_codas[] = {"n", "r", "l"}; /* keep clusters pronounceable */

/* ------------------------------------------------------------------------------------------
 * Zipf distributions over integer weights */

typedef struct {
    int n;
    int *items;
    uint64_t *cum; /* cumulative weights */
} Dist;

static void dist_alloc(Dist *d, int cap)
{
    d->n = 0;
    d->items = ns_xmalloc((size_t)cap * sizeof(int));
    d->cum = ns_xmalloc((size_t)cap * sizeof(uint64_t));
}

/* Adds an item whose Zipf rank is `rank` (0 = most frequent): weight 2^32 / (rank + 1). */
static void dist_add(Dist *d, int item, int rank)
{
    uint64_t w = (1ULL << 32) / (uint64_t)(rank + 1);
    d->cum[d->n] = (d->n ? d->cum[d->n - 1] : 0) + w;
    d->items[d->n++] = item;
}

static void dist_zipf(Dist *d, int n)
{
    dist_alloc(d, n);
    for (int r = 0; r < n; r++)
        dist_add(d, r, r);
}

static int dist_sample(const Dist *d, NsRng *rng)
{
    uint64_t u = ns_rng_below(rng, d->cum[d->n - 1]);
    int lo = 0, hi = d->n - 1; /* first index with cum > u */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (d->cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return d->items[lo];
}

static void dist_free(Dist *d)
{
    free(d->items);
    free(d->cum);
}

/* ------------------------------------------------------------------------------------------
 * A set of surface forms, to keep every word distinct while the lexicon is generated */

typedef struct {
    const char *keys[SET_SLOTS];
} WordSet;

static size_t word_slot(const WordSet *s, const char *w)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = w; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    size_t i = (size_t)(h ^ (h >> 32)) & (SET_SLOTS - 1);
    while (s->keys[i] && strcmp(s->keys[i], w) != 0)
        i = (i + 1) & (SET_SLOTS - 1);
    return i;
}

/* Adds all n forms if none is taken yet (and they differ from each other); returns 1 if so. */
static int add_forms(WordSet *s, const char *const *forms, int n)
{
    for (int i = 0; i < n; i++) {
        if (s->keys[word_slot(s, forms[i])])
            return 0;
        for (int j = 0; j < i; j++)
            if (strcmp(forms[i], forms[j]) == 0)
                return 0;
    }
    for (int i = 0; i < n; i++)
        s->keys[word_slot(s, forms[i])] = forms[i];
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Lexicon */

typedef struct {
    char sg[WMAX], pl[WMAX];
} Noun;

typedef struct {
    char sg[WMAX], pl[WMAX], past[WMAX];
    int frame;
} Verb;

typedef struct {
    char adj[WMAX], adv[WMAX];
} Adjective;

typedef struct {
    Noun nouns[N_NOUNS];
    Verb verbs[N_VERBS];
    Adjective adjs[N_ADJS];
    Dist noun_all, verb_all, adj_all, adv_all;
    Dist noun_topic[N_TOPICS], verb_topic[N_TOPICS], adj_topic[N_TOPICS];
    Dist det[2], prep, conj, subord, pron;
} Lexicon;

#define PICK(rng, table) (table)[ns_rng_below((rng), (uint64_t)COUNT(table))]

/* Frequent words get fewer syllables, as in natural languages. */
static int syllables_for_rank(NsRng *rng, int rank)
{
    if (rank < 40)
        return 1 + (int)ns_rng_below(rng, 2);
    if (rank < 400)
        return 2;
    return 2 + (int)ns_rng_below(rng, 2);
}

static void make_stem(NsRng *rng, int rank, char *out)
{
    int n = syllables_for_rank(rng, rank);
    out[0] = '\0';
    for (int s = 0; s < n; s++) {
        if (s > 0 || ns_rng_below(rng, 5) != 0) /* some words start with a vowel */
            strcat(out, PICK(rng, onsets));
        strcat(out, PICK(rng, vowels));
        if (s == n - 1)
            strcat(out, PICK(rng, final_codas));
        else if (ns_rng_below(rng, 4) == 0)
            strcat(out, PICK(rng, medial_codas));
    }
}

static int ends_in_vowel(const char *w)
{
    size_t n = strlen(w);
    return n > 0 && strchr("aeiou", w[n - 1]) != NULL;
}

static void with_suffix(char *dst, const char *stem, const char *suffix)
{
    strcpy(dst, stem);
    strcat(dst, suffix);
}

static void make_nouns(Lexicon *lex, WordSet *seen, NsRng *rng)
{
    for (int r = 0; r < N_NOUNS; r++) {
        Noun *n = &lex->nouns[r];
        const char *forms[2] = {n->sg, n->pl};
        do {
            make_stem(rng, r, n->sg);
            with_suffix(n->pl, n->sg, ends_in_vowel(n->sg) ? "s" : "i");
        } while (!add_forms(seen, forms, 2));
    }
}

static void make_verbs(Lexicon *lex, WordSet *seen, NsRng *rng)
{
    for (int r = 0; r < N_VERBS; r++) {
        Verb *v = &lex->verbs[r];
        const char *forms[3] = {v->sg, v->pl, v->past};
        char stem[WMAX];
        do {
            make_stem(rng, r, stem);
            with_suffix(v->sg, stem, "et");
            with_suffix(v->pl, stem, "un");
            with_suffix(v->past, stem, "ed");
        } while (!add_forms(seen, forms, 3));
        uint64_t u = ns_rng_below(rng, 100);
        v->frame = u < 55 ? TRANSITIVE : u < 85 ? INTRANSITIVE : SENTENTIAL;
    }
}

static void make_adjectives(Lexicon *lex, WordSet *seen, NsRng *rng)
{
    for (int r = 0; r < N_ADJS; r++) {
        Adjective *a = &lex->adjs[r];
        const char *forms[2] = {a->adj, a->adv};
        do {
            make_stem(rng, r, a->adj);
            with_suffix(a->adv, a->adj, "li");
        } while (!add_forms(seen, forms, 2));
    }
}

static void reserve_closed_words(WordSet *seen)
{
    for (int i = 0; i < COUNT(determiners); i++)
        add_forms(seen, &determiners[i].word, 1);
    for (int i = 0; i < COUNT(prepositions); i++)
        add_forms(seen, &prepositions[i], 1);
    for (int i = 0; i < COUNT(conjunctions); i++)
        add_forms(seen, &conjunctions[i], 1);
    for (int i = 0; i < COUNT(subordinators); i++)
        add_forms(seen, &subordinators[i], 1);
    add_forms(seen, pronouns[SG], 3);
    add_forms(seen, pronouns[PL], 3);
    add_forms(seen, &COMPLEMENTIZER, 1);
    add_forms(seen, &RELATIVE, 1);
    add_forms(seen, &NEGATION, 1);
}

/* Global Zipf list of a class plus one list per topic holding that topic's home words (each
 * keeps the weight of its global rank). The N_GENERAL top words have no home topic. */
static void make_topic_dists(Dist *all, Dist *topic, int n)
{
    dist_zipf(all, n);
    for (int t = 0; t < N_TOPICS; t++)
        dist_alloc(&topic[t], n / N_TOPICS + 1);
    for (int r = N_GENERAL; r < n; r++)
        dist_add(&topic[(r - N_GENERAL) % N_TOPICS], r, r);
}

static void make_closed_dists(Lexicon *lex)
{
    for (int num = SG; num <= PL; num++) {
        dist_alloc(&lex->det[num], COUNT(determiners));
        for (int i = 0; i < COUNT(determiners); i++)
            if (determiners[i].number == num || determiners[i].number == ANY)
                dist_add(&lex->det[num], i, i);
    }
    dist_zipf(&lex->prep, COUNT(prepositions));
    dist_zipf(&lex->conj, COUNT(conjunctions));
    dist_zipf(&lex->subord, COUNT(subordinators));
    dist_zipf(&lex->pron, 3);
}

static Lexicon *lexicon_build(void)
{
    Lexicon *lex = ns_xcalloc(1, sizeof(Lexicon));
    WordSet *seen = ns_xcalloc(1, sizeof(WordSet));
    NsRng rng;
    ns_rng_seed(&rng, LEXICON_SEED);
    reserve_closed_words(seen);
    make_nouns(lex, seen, &rng);
    make_verbs(lex, seen, &rng);
    make_adjectives(lex, seen, &rng);
    free(seen);
    make_topic_dists(&lex->noun_all, lex->noun_topic, N_NOUNS);
    make_topic_dists(&lex->verb_all, lex->verb_topic, N_VERBS);
    make_topic_dists(&lex->adj_all, lex->adj_topic, N_ADJS);
    dist_zipf(&lex->adv_all, N_ADVS);
    make_closed_dists(lex);
    return lex;
}

static void lexicon_free(Lexicon *lex)
{
    dist_free(&lex->noun_all);
    dist_free(&lex->verb_all);
    dist_free(&lex->adj_all);
    dist_free(&lex->adv_all);
    for (int t = 0; t < N_TOPICS; t++) {
        dist_free(&lex->noun_topic[t]);
        dist_free(&lex->verb_topic[t]);
        dist_free(&lex->adj_topic[t]);
    }
    dist_free(&lex->det[SG]);
    dist_free(&lex->det[PL]);
    dist_free(&lex->prep);
    dist_free(&lex->conj);
    dist_free(&lex->subord);
    dist_free(&lex->pron);
    free(lex);
}

/* ------------------------------------------------------------------------------------------
 * Sentence generation */

typedef struct {
    const Lexicon *lex;
    NsRng rng;
    int topic;
    const char *words[MAX_WORDS];
    int n_words;
    int overflow; /* the sentence outgrew MAX_WORDS and will be redrawn */
} Gen;

static int chance(Gen *g, int percent) { return (int)ns_rng_below(&g->rng, 100) < percent; }

static int random_number(Gen *g) { return chance(g, 35) ? PL : SG; }

static void emit(Gen *g, const char *w)
{
    if (g->n_words < MAX_WORDS)
        g->words[g->n_words++] = w;
    else
        g->overflow = 1;
}

/* Draws from the current topic's list with `percent`, from the global list otherwise. */
static int pick_topical(Gen *g, const Dist *all, const Dist *by_topic, int percent)
{
    if (chance(g, percent))
        return dist_sample(&by_topic[g->topic], &g->rng);
    return dist_sample(all, &g->rng);
}

static void clause(Gen *g, int depth);
static void verb_phrase(Gen *g, int number, int depth);

static void adverb(Gen *g) { emit(g, g->lex->adjs[dist_sample(&g->lex->adv_all, &g->rng)].adv); }

static void noun_phrase(Gen *g, int number, int depth);

static void prep_phrase(Gen *g, int depth)
{
    emit(g, prepositions[dist_sample(&g->lex->prep, &g->rng)]);
    noun_phrase(g, random_number(g), depth);
}

static void noun_phrase(Gen *g, int number, int depth)
{
    const Lexicon *lex = g->lex;
    emit(g, determiners[dist_sample(&lex->det[number], &g->rng)].word);
    for (int k = 0; k < 3 && chance(g, k == 0 ? 35 : 20); k++)
        emit(g, lex->adjs[pick_topical(g, &lex->adj_all, lex->adj_topic, 40)].adj);
    const Noun *n = &lex->nouns[pick_topical(g, &lex->noun_all, lex->noun_topic, 55)];
    emit(g, number == PL ? n->pl : n->sg);
    if (depth < MAX_DEPTH && chance(g, 18))
        prep_phrase(g, depth + 1);
    if (depth < MAX_DEPTH && chance(g, 8)) {
        emit(g, RELATIVE);
        verb_phrase(g, number, depth + 1); /* agrees with the head noun, not the PP's noun */
    }
}

static void verb_phrase(Gen *g, int number, int depth)
{
    const Lexicon *lex = g->lex;
    int past = chance(g, 35);
    if (chance(g, 6))
        emit(g, NEGATION);
    const Verb *v = &lex->verbs[pick_topical(g, &lex->verb_all, lex->verb_topic, 45)];
    emit(g, past ? v->past : number == PL ? v->pl : v->sg);
    int frame = v->frame;
    if (frame == SENTENTIAL && depth >= MAX_DEPTH)
        frame = TRANSITIVE; /* stop embedding clauses */
    if (frame == TRANSITIVE) {
        noun_phrase(g, random_number(g), depth + 1);
    } else if (frame == INTRANSITIVE) {
        if (chance(g, 50))
            adverb(g);
        else
            prep_phrase(g, depth + 1);
    } else {
        emit(g, COMPLEMENTIZER);
        clause(g, depth + 1);
    }
    if (depth < MAX_DEPTH && chance(g, 15))
        prep_phrase(g, depth + 1);
    if (chance(g, 10))
        adverb(g);
}

static void clause(Gen *g, int depth)
{
    int number = random_number(g);
    if (chance(g, 15))
        emit(g, pronouns[number][dist_sample(&g->lex->pron, &g->rng)]);
    else
        noun_phrase(g, number, depth);
    verb_phrase(g, number, depth);
}

static void subordinate_clause(Gen *g)
{
    emit(g, subordinators[dist_sample(&g->lex->subord, &g->rng)]);
    clause(g, 1);
}

static void sentence(Gen *g)
{
    if (!chance(g, 75))
        g->topic = (int)ns_rng_below(&g->rng, N_TOPICS);
    do {
        g->n_words = 0;
        g->overflow = 0;
        if (chance(g, 10))
            subordinate_clause(g);
        clause(g, 0);
        for (int k = 0; k < 2 && chance(g, 20); k++) {
            emit(g, conjunctions[dist_sample(&g->lex->conj, &g->rng)]);
            clause(g, 0);
        }
        if (chance(g, 12))
            subordinate_clause(g);
    } while (g->overflow || g->n_words < MIN_WORDS);
}

/* ------------------------------------------------------------------------------------------
 * Output */

typedef struct {
    char *buf;
    size_t len, cap;
} Text;

static void text_append(Text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        while (t->len + n + 1 > t->cap)
            t->cap *= 2;
        t->buf = ns_xrealloc(t->buf, t->cap);
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_add_sentence(Text *t, const Gen *g)
{
    for (int i = 0; i < g->n_words; i++) {
        if (i > 0)
            text_append(t, " ", 1);
        text_append(t, g->words[i], strlen(g->words[i]));
    }
    text_append(t, "\n", 1);
}

char *ns_synth_corpus(uint64_t seed, size_t target_bytes, size_t *len)
{
    Lexicon *lex = lexicon_build();
    Gen *g = ns_xcalloc(1, sizeof(Gen));
    g->lex = lex;
    ns_rng_seed(&g->rng, seed);
    g->topic = (int)ns_rng_below(&g->rng, N_TOPICS);
    Text t = {NULL, 0, target_bytes + 1024};
    t.buf = ns_xmalloc(t.cap);
    t.buf[0] = '\0';
    do {
        sentence(g);
        text_add_sentence(&t, g);
    } while (t.len < target_bytes);
    free(g);
    lexicon_free(lex);
    *len = t.len;
    return t.buf;
}
