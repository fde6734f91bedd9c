/* The study report's section on each run's outcome (analysis/outcome.h): diverged, unstable
 * (its training loss rose, or its gradient norm grew by orders of magnitude) or stable, with
 * the numbers the verdict rests on. A distance that grows in an unstable run shows instability,
 * not the paper's effect. */
#ifndef NS_REPORT_STABILITY_H
#define NS_REPORT_STABILITY_H

#include <stddef.h>
#include <stdio.h>

#include "logread.h"

void ns_report_stability(FILE *f, const NsLog *logs, int n);

/* When `log` is unstable and did not diverge: why ("its training loss rose from ...") into buf,
 * and 1; else "" and 0. */
int ns_unstable_why(const NsLog *log, char *buf, size_t len);

#endif
