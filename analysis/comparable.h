/* Which runs can be compared site by site. Runs of one model shape (root attributes d_model and
 * n_layers: they decide the norm sites and the (1/d) scale of the distances) are comparable; a
 * report given runs of several shapes (or a log from another writer, which may record neither)
 * compares the shape with the most runs (the first run's on a tie) in the sections that judge
 * schemes against each other at the same site, and says which runs it left out and why. */
#ifndef NS_COMPARABLE_H
#define NS_COMPARABLE_H

#include "logread.h"
#include "table.h"

/* Copies into out (room for n) the runs of the compared shape, in order; returns their count
 * (at least 1 when n >= 1). The copies share the originals' open files: close only those. */
int ns_comparable_logs(const NsLog *logs, int n, NsLog *out);

/* in[i] = 1 for the runs of the compared shape, else 0; returns their count. */
int ns_comparable_mask(const NsLog *logs, int n, int *in);

/* When some runs are left out: "compared: 3 runs with d_model=256, 4 layers; left out:
 * big.h5 (d_model=512, 6 layers)" appended to t, and 1; else nothing and 0. */
int ns_comparable_text(NsText *t, const NsLog *logs, int n);

#endif
