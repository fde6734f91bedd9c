/* A run's outcome, judged from its log alone, in one place for the comparison table, the study
 * report, the release report, the sweep's table and onset map, and the runner (which keeps a
 * cell that finished or diverged).
 *
 * Diverged: the first step whose training loss or gradient norm, or whose validation loss, is
 * not finite, or whose training or validation loss is above NS_DIVERGE_BOUND_LNV x ln(V), V the
 * log's root attribute vocab_size (a model that far above uniform guessing is broken, even while
 * its loss stays finite: --lr 1e6 gives a loss of 1.6e12). A log without vocab_size (another
 * writer) is bounded by NS_DIVERGE_BOUND_FIRST x its first finite training loss instead.
 *
 * Unstable (it trained, but got worse): the training loss smoothed as its median over each fifth
 * of the run (steps in (k/5, (k+1)/5] of the last step) rises, i.e. a later fifth's median is
 * more than NS_UNSTABLE_RISE x the lowest median of the fifths before it; or the gradient norm
 * grows by orders of magnitude: the median of steps/grad_norm over the last fifth is at least
 * NS_UNSTABLE_GRAD_GROWTH x its median over the second fifth. Such a run shows what instability
 * looks like, not a property of a healthy run's normalization. */
#ifndef NS_OUTCOME_H
#define NS_OUTCOME_H

#include <stddef.h>

#include "logread.h"

#define NS_DIVERGE_BOUND_LNV 10.0
#define NS_DIVERGE_BOUND_FIRST 100.0
#define NS_UNSTABLE_RISE 1.05
#define NS_UNSTABLE_GRAD_GROWTH 100.0
#define NS_FIFTHS 5

enum { NS_UNSTABLE_LOSS = 1, NS_UNSTABLE_GRAD = 2 };

typedef struct {
    double loss_fifth[NS_FIFTHS]; /* median training loss per fifth of the run; NaN where none */
    int rise_from, rise_to;       /* the largest rise: from the lowest earlier fifth to a later
                                     one (0-based), -1 when the loss never rises past the margin */
    double grad_growth;           /* last-fifth / second-fifth median of steps/grad_norm; NaN */
    int unstable;                 /* NS_UNSTABLE_LOSS | NS_UNSTABLE_GRAD bits; 0: stable */
} NsStability;

typedef struct {
    double steps_done;  /* last row of steps/step; 0 when none */
    long steps_planned; /* root attribute `steps`; -1 when absent */
    double diverged_at; /* the first step that diverged (above); NaN when none did */
    double loss_bound;  /* the loss above which it diverged; NaN when the log gives none */
    double final_ppl;   /* last eval/ppl; NaN when none */
    double minutes;     /* training wall time (steps/wall_time summed over resumed segments) */
    NsStability stab;
} NsRunOutcome;

void ns_run_outcome(const NsLog *log, NsRunOutcome *o);

/* The verdict in words for a table cell: "diverged@STEP", "unstable", "stable", or "n/a" when
 * the log has no training loss. */
const char *ns_outcome_word(const NsRunOutcome *o);

/* Why the run is unstable, as a clause: "its training loss rose from 4.5 (first fifth) to 5.7
 * (second fifth)" and/or "its gradient norm grew 300-fold"; "" when it is not. */
void ns_stability_text(const NsStability *s, char *buf, size_t len);

#endif
