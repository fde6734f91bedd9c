#include "outcome.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "util.h"
#include "window.h"

/* The first step of group/ whose `name` (or `also`) is not finite or whose `name` is above
 * bound (NaN: no bound). */
static double first_bad(const NsLog *log, const char *group, const char *name, const char *also,
                        double bound)
{
    char path[NS_RUNLOG_PATH_LEN];
    size_t n = 0, nv = 0, na = 0;
    double *step = ns_window_series(log, ns_runlog_path(path, sizeof path, group, NS_RUNLOG_STEP),
                                    &n);
    double *v = ns_window_series(log, ns_runlog_path(path, sizeof path, group, name), &nv);
    double *a = also ? ns_window_series(log, ns_runlog_path(path, sizeof path, group, also), &na)
                     : NULL;
    double first = NAN;
    for (size_t i = 0; i < n && i < nv && isnan(first); i++)
        if (!isfinite(v[i]) || v[i] > bound || (i < na && !isfinite(a[i])))
            first = step[i];
    free(step);
    free(v);
    free(a);
    return first;
}

/* NS_DIVERGE_BOUND_LNV x ln(vocab_size), else NS_DIVERGE_BOUND_FIRST x the first finite
 * positive training loss; NaN when the log gives neither. */
static double loss_bound(const NsLog *run)
{
    long v = 0;
    if (ns_log_attr_long(run, "vocab_size", &v) == 0 && v > 1)
        return NS_DIVERGE_BOUND_LNV * log((double)v);
    size_t n = 0;
    double *loss = ns_window_series(run, "steps/loss", &n), bound = NAN;
    for (size_t i = 0; i < n && isnan(bound); i++)
        if (isfinite(loss[i]) && loss[i] > 0)
            bound = NS_DIVERGE_BOUND_FIRST * loss[i];
    free(loss);
    return bound;
}

/* Training wall time: steps/wall_time restarts in a resumed process, so each segment's last
 * value counts. */
static double wall_minutes(const NsLog *log)
{
    size_t n = 0;
    double *w = ns_window_series(log, "steps/wall_time", &n), sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n || w[i + 1] < w[i])
            sum += isfinite(w[i]) ? w[i] : 0.0;
    free(w);
    return n > 0 ? sum / 60.0 : NAN;
}

static double fifth_median(const NsLog *log, const char *name, double last, int k)
{
    return ns_window_quantile(log, NS_RUNLOG_STEPS, name, last, (double)k / NS_FIFTHS,
                              (double)(k + 1) / NS_FIFTHS, 0, 0.5);
}

static void judge_stability(const NsLog *log, double last, NsStability *s)
{
    memset(s, 0, sizeof *s);
    s->rise_from = s->rise_to = -1;
    for (int k = 0; k < NS_FIFTHS; k++)
        s->loss_fifth[k] = last > 0 ? fifth_median(log, "loss", last, k) : NAN;
    double worst = NS_UNSTABLE_RISE; /* the largest later / lowest-earlier ratio past the margin */
    int low = -1;                    /* the lowest fifth so far */
    for (int k = 0; k < NS_FIFTHS; k++) {
        double v = s->loss_fifth[k];
        if (isnan(v))
            continue;
        if (low >= 0 && s->loss_fifth[low] > 0 && v / s->loss_fifth[low] > worst) {
            worst = v / s->loss_fifth[low];
            s->rise_from = low, s->rise_to = k;
        }
        if (low < 0 || v < s->loss_fifth[low])
            low = k;
    }
    if (s->rise_to >= 0)
        s->unstable |= NS_UNSTABLE_LOSS;
    double early = last > 0 ? fifth_median(log, "grad_norm", last, 1) : NAN;
    double late = last > 0 ? fifth_median(log, "grad_norm", last, NS_FIFTHS - 1) : NAN;
    s->grad_growth = early > 0 && !isnan(late) ? late / early : NAN;
    if (s->grad_growth >= NS_UNSTABLE_GRAD_GROWTH)
        s->unstable |= NS_UNSTABLE_GRAD;
}

void ns_run_outcome(const NsLog *log, NsRunOutcome *o)
{
    size_t n = 0;
    double *step = ns_window_series(log, "steps/step", &n);
    o->steps_done = n > 0 ? step[n - 1] : 0.0;
    free(step);
    if (ns_log_attr_long(log, "steps", &o->steps_planned) < 0)
        o->steps_planned = -1;
    o->loss_bound = loss_bound(log);
    double bound = isnan(o->loss_bound) ? INFINITY : o->loss_bound;
    double train = first_bad(log, NS_RUNLOG_STEPS, "loss", "grad_norm", bound);
    double eval = first_bad(log, NS_RUNLOG_EVAL, "loss", NULL, bound);
    o->diverged_at = isnan(train) || eval < train ? eval : train;
    size_t np = 0;
    double *ppl = ns_window_series(log, "eval/ppl", &np);
    o->final_ppl = np > 0 ? ppl[np - 1] : NAN;
    free(ppl);
    o->minutes = wall_minutes(log);
    judge_stability(log, o->steps_done, &o->stab);
}

const char *ns_outcome_word(const NsRunOutcome *o)
{
    static _Thread_local char buf[48];
    if (!isnan(o->diverged_at)) {
        snprintf(buf, sizeof buf, "diverged@%.0f", o->diverged_at);
        return buf;
    }
    if (o->stab.unstable)
        return "unstable";
    for (int k = 0; k < NS_FIFTHS; k++)
        if (!isnan(o->stab.loss_fifth[k]))
            return "stable";
    return "n/a";
}

static const char *const FIFTH_NAMES[NS_FIFTHS] = {"first", "second", "third", "fourth",
                                                   "last"};

void ns_stability_text(const NsStability *s, char *buf, size_t len)
{
    buf[0] = '\0';
    if (s->unstable & NS_UNSTABLE_LOSS)
        snprintf(buf, len, "its training loss rose from %.3g (median of the %s fifth) to %.3g "
                 "(the %s fifth; %.3g in the last)", s->loss_fifth[s->rise_from],
                 FIFTH_NAMES[s->rise_from], s->loss_fifth[s->rise_to], FIFTH_NAMES[s->rise_to],
                 s->loss_fifth[NS_FIFTHS - 1]);
    if (s->unstable & NS_UNSTABLE_GRAD) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%sits gradient norm grew %.3g-fold", used ? " and " : "",
                 s->grad_growth);
    }
}
