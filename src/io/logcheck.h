/* check-log: validates a run log from any writer against the declared schema
 * (runlog.schema.json, through runlog_schema_gen): root attributes (declared, required, dtype),
 * every dataset declared by a group of the schema with its dtype, rank, width and units, the
 * groups that the `probes` attribute and the run's configuration require, equal row counts of a
 * group's series and its step series, and step values that increase strictly within the run's
 * `steps`. The file is never trusted: links other than hard links are reported, not followed;
 * the walk, the number of problems and the rows read are bounded. */
#ifndef NS_LOGCHECK_H
#define NS_LOGCHECK_H

#include <stdio.h>

/* Checks the log at path, printing one line per problem to out ("PATH: /object: what");
 * at most max_problems lines, then a count of the rest. Returns the number of problems (0: the
 * log meets the schema). */
int ns_log_check(const char *path, FILE *out, int max_problems);

#endif
