#include "comparable.h"

#include <stdio.h>
#include <stdlib.h>

#include "util.h"

static int same_shape(const NsLog *a, const NsLog *b)
{
    return a->d_model == b->d_model && a->n_layers == b->n_layers;
}

/* The run whose shape has the most runs, the first such run on a tie. */
static int compared_shape(const NsLog *logs, int n)
{
    int best = 0, best_count = 0;
    for (int i = 0; i < n; i++) {
        int count = 0;
        for (int j = 0; j < n; j++)
            count += same_shape(&logs[i], &logs[j]);
        if (count > best_count)
            best = i, best_count = count;
    }
    return best;
}

int ns_comparable_mask(const NsLog *logs, int n, int *in)
{
    int ref = compared_shape(logs, n), m = 0;
    for (int i = 0; i < n; i++)
        m += in[i] = same_shape(&logs[i], &logs[ref]);
    return m;
}

int ns_comparable_logs(const NsLog *logs, int n, NsLog *out)
{
    int ref = compared_shape(logs, n), m = 0;
    for (int i = 0; i < n; i++)
        if (same_shape(&logs[i], &logs[ref]))
            out[m++] = logs[i];
    return m;
}

/* "d_model=256, 4 layers"; a writer that records neither: "no d_model or n_layers recorded". */
static void shape_text(NsText *t, const NsLog *log)
{
    if (log->d_model <= 0 && log->n_layers <= 0)
        ns_text_printf(t, "no d_model or n_layers recorded");
    else
        ns_text_printf(t, "d_model=%ld, %ld layer%s", log->d_model, log->n_layers,
                       log->n_layers == 1 ? "" : "s");
}

int ns_comparable_text(NsText *t, const NsLog *logs, int n)
{
    int ref = compared_shape(logs, n), kept = 0;
    for (int i = 0; i < n; i++)
        kept += same_shape(&logs[i], &logs[ref]);
    if (kept == n)
        return 0;
    ns_text_printf(t, "compared: %d run%s with ", kept, kept == 1 ? "" : "s");
    shape_text(t, &logs[ref]);
    ns_text_printf(t, "; left out: ");
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (same_shape(&logs[i], &logs[ref]))
            continue;
        ns_text_printf(t, "%s", k++ ? ", " : "");
        ns_text_md(t, logs[i].path);
        ns_text_printf(t, " (");
        shape_text(t, &logs[i]);
        ns_text_printf(t, ")");
    }
    return 1;
}
