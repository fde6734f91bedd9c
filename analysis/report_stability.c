#include "report_stability.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "outcome.h"
#include "seeds.h"
#include "util.h"
#include "window.h"

int ns_unstable_why(const NsLog *log, char *buf, size_t len)
{
    NsRunOutcome o;
    ns_run_outcome(log, &o);
    ns_stability_text(&o.stab, buf, len);
    if (!isnan(o.diverged_at))
        buf[0] = '\0';
    return buf[0] != '\0';
}

static void fifths_text(char *buf, size_t len, const NsStability *s)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < NS_FIFTHS && used < len; k++) {
        if (isnan(s->loss_fifth[k]))
            snprintf(buf + used, len - used, "%sn/a", k ? ", " : "");
        else
            snprintf(buf + used, len - used, "%s%.3g", k ? ", " : "", s->loss_fifth[k]);
        used += strlen(buf + used);
    }
}

void ns_report_stability(FILE *f, const NsLog *logs, int n)
{
    fprintf(f, "## Stability\n\nA run **diverged** at the first step whose training loss or "
               "gradient norm, or validation loss, is not finite, or whose training or validation "
               "loss is above %g ln(V) (V the vocabulary size; without one, %gx the first "
               "training loss). A run that did not diverge is **unstable** when its training "
               "loss, smoothed as its median over each fifth of the run, rises: a fifth's median "
               "more than %.0f %% above the lowest median of the fifths before it; or when the "
               "median gradient norm of the last fifth is at least %gx that of the second fifth. "
               "A distance that grows in an unstable run shows what instability looks like, not "
               "the paper's effect.\n\n| run | verdict | training loss, median per fifth | "
               "grad_norm last / second fifth |\n|---|---|---|---:|\n",
            NS_DIVERGE_BOUND_LNV, NS_DIVERGE_BOUND_FIRST, 100.0 * (NS_UNSTABLE_RISE - 1.0),
            NS_UNSTABLE_GRAD_GROWTH);
    for (int i = 0; i < n; i++) {
        NsRunOutcome o;
        ns_run_outcome(&logs[i], &o);
        char label[128], fifths[160], why[300], growth[32];
        ns_seed_label(logs, n, i, label, sizeof label);
        fifths_text(fifths, sizeof fifths, &o.stab);
        ns_stability_text(&o.stab, why, sizeof why);
        fprintf(f, "| %s | %s%s%s | %s | %s |\n", label, ns_outcome_word(&o),
                why[0] && isnan(o.diverged_at) ? ": " : "", isnan(o.diverged_at) ? why : "",
                fifths, ns_window_num(growth, sizeof growth, o.stab.grad_growth));
    }
    fprintf(f, "\n");
}
