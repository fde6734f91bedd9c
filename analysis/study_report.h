/* The study's Markdown report (DIR/report.md): the configuration, the comparison table, and
 * what the measurements show about the paper's claims — each statement computed from the run
 * logs, with the numbers, and said plainly when a claim does not hold at this scale. */
#ifndef NS_STUDY_REPORT_H
#define NS_STUDY_REPORT_H

#include <stdio.h>

#include "logread.h"

/* The run's configuration as a Markdown list (corpus, model, training). */
void ns_study_report_config(FILE *f, const NsLog *log);

int ns_study_report(const char *out_dir, NsLog *logs, int n, char *err);

#endif
