/* The study report's smoothness section: schemes compared on the loss's beta-smoothness and the
 * Hessian's top eigenvalue and trace, from the smoothness probe's series in the run logs. */
#ifndef NS_REPORT_SMOOTHNESS_H
#define NS_REPORT_SMOOTHNESS_H

#include <stdio.h>

#include "logread.h"

/* Writes a Markdown section (## heading, a table, one sentence per measure) about runs
 * logs[0..n). Runs without /lipschitz are listed as such. */
void ns_report_smoothness(FILE *f, NsLog *logs, int n);

#endif
