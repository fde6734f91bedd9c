/* The live view of a run log that `normscope train` is still writing (see watch.c for the rules
 * that end it). */
#ifndef NS_WATCH_H
#define NS_WATCH_H

/* Watches `file`, redrawing every `interval` seconds (once: one snapshot). Returns the exit code:
 * 0 finished (or --once, or Ctrl-C), 3 diverged, 1 stalled or unreadable (one line on stderr). */
int ns_watch_run(const char *file, double interval, int once);

#endif
