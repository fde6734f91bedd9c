#include "seeds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_config.h"
#include "sanitize.h"
#include "util.h"

long ns_log_seed(const NsLog *log)
{
    long seed;
    return ns_log_attr_long(log, "seed", &seed) == 0 ? seed : -1;
}

/* Attributes that may differ between repetitions: the seed, and settings that change how fast
 * or how often things are written, not what is computed. */
static int ignored(const char *attr)
{
    return !strcmp(attr, "seed") || !strcmp(attr, "threads") || !strcmp(attr, "flush_every");
}

static int same_attr(const NsLog *a, const NsLog *b, const NsOption *o)
{
    int ra, rb;
    switch (ns_option_stored_type(o)) {
    case NS_STORED_INT: {
        long va = 0, vb = 0;
        ra = ns_log_attr_long(a, o->attr, &va), rb = ns_log_attr_long(b, o->attr, &vb);
        return ra == rb && (ra < 0 || va == vb);
    }
    case NS_STORED_REAL: {
        double va = 0, vb = 0;
        ra = ns_log_attr_double(a, o->attr, &va), rb = ns_log_attr_double(b, o->attr, &vb);
        return ra == rb && (ra < 0 || va == vb || (isnan(va) && isnan(vb)));
    }
    default: {
        char va[1100] = "", vb[1100] = "";
        ra = ns_log_attr_str(a, o->attr, va, sizeof va);
        rb = ns_log_attr_str(b, o->attr, vb, sizeof vb);
        return ra == rb && (ra < 0 || strcmp(va, vb) == 0);
    }
    }
}

void ns_seed_label(const NsLog *logs, int n, int i, char *buf, size_t len)
{
    int shared = 0;
    for (int j = 0; j < n; j++)
        shared |= j != i && strcmp(logs[j].label, logs[i].label) == 0;
    long seed = ns_log_seed(&logs[i]);
    if (shared && seed >= 0)
        snprintf(buf, len, "%.60s seed %ld", logs[i].label, seed); /* room for the seed */
    else
        snprintf(buf, len, "%s", logs[i].label);
}

void ns_seed_label_md(const NsLog *logs, int n, int i, char *buf, size_t len)
{
    char label[sizeof logs[i].label + 32];
    ns_seed_label(logs, n, i, label, sizeof label);
    ns_md_text(buf, len, label);
}

/* vocab_size is the vocabulary built, which on the embedded corpus (generated from the seed)
 * differs between seeds (e.g. 6390 and 6380 words under a cap of 16000): where both logs record
 * the cap asked for (vocab_cap), the caps are compared instead. */
int ns_logs_same_but_seed(const NsLog *a, const NsLog *b)
{
    return ns_logs_same_except(a, b, ignored);
}

int ns_logs_same_except(const NsLog *a, const NsLog *b, int (*skip)(const char *attr))
{
    long cap_a, cap_b;
    int caps = ns_log_attr_long(a, "vocab_cap", &cap_a) == 0 &&
               ns_log_attr_long(b, "vocab_cap", &cap_b) == 0;
    if (caps && cap_a != cap_b)
        return 0;
    for (size_t k = 0; k < NS_N_RUN_OPTIONS; k++) {
        const NsOption *o = &NS_RUN_OPTIONS[k];
        if (o->attr && !skip(o->attr) && !(caps && !strcmp(o->attr, "vocab_size")) &&
            !same_attr(a, b, o))
            return 0;
    }
    return 1;
}

int ns_seed_groups(const NsLog *logs, int n, int *group)
{
    int groups = 0;
    for (int i = 0; i < n; i++) {
        group[i] = -1;
        for (int j = 0; j < i && group[i] < 0; j++)
            if (ns_logs_same_but_seed(&logs[i], &logs[j]))
                group[i] = group[j];
        if (group[i] < 0)
            group[i] = groups++;
    }
    return groups;
}

void ns_spread(const double *v, int n, NsSpread *out)
{
    double sum = 0, sq = 0;
    out->n = 0;
    out->min = INFINITY, out->max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            sum += v[i];
            out->n++;
            out->min = v[i] < out->min ? v[i] : out->min;
            out->max = v[i] > out->max ? v[i] : out->max;
        }
    out->mean = out->n ? sum / out->n : NAN;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i]))
            sq += (v[i] - out->mean) * (v[i] - out->mean);
    out->sd = out->n > 1 ? sqrt(sq / (out->n - 1)) : NAN;
    if (!out->n)
        out->min = out->max = NAN;
}

int ns_spread_within(const NsSpread *a, const NsSpread *b)
{
    if (a->n < 1 || b->n < 1 || (a->n < 2 && b->n < 2))
        return 0;
    double ra = a->max - a->min, rb = b->max - b->min;
    return fabs(a->mean - b->mean) <= (ra > rb ? ra : rb);
}

const char *ns_spread_text(char *buf, size_t len, const NsSpread *s)
{
    if (s->n < 1)
        snprintf(buf, len, "n/a");
    else if (s->n < 2)
        snprintf(buf, len, "%.4g", s->mean);
    else
        snprintf(buf, len, "%.4g ± %.2g", s->mean, s->sd);
    return buf;
}
