/* Private to the study report: the sections that look at every norm site and every seed. */
#ifndef NS_STUDY_CLAIMS_H
#define NS_STUDY_CLAIMS_H

#include <stdio.h>

#include "logread.h"

/* Per-site summary: for each configuration (runs that differ only in seed taken together), the
 * growth of its distance at the first site and the site where it is largest. Writes into
 * `largest` (size len) the site where BN's growth is largest (else the largest of any run; ""
 * when no run has sites). */
void ns_report_sites(FILE *f, const NsLog *logs, int n, const char *first, char *largest,
                     size_t len);

/* The paper's forward and backward claims (BN against PN-V), judged at every site and stated
 * per site, with the verdict over all sites. */
void ns_report_claims(FILE *f, const NsLog *logs, int n);

/* Final validation perplexity per configuration, mean ± sd over seeds, and which differences are
 * within seed spread. */
void ns_report_training_seeds(FILE *f, const NsLog *logs, int n);


#endif
