/* The subcommands of the normscope program, each `int run(argc, argv)` returning an exit code.
 * Engine commands live in src/cmd_engine.c; analysis commands in analysis/. */
#ifndef NS_COMMANDS_H
#define NS_COMMANDS_H

#include <stdio.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
} NsCommand;

const NsCommand *ns_find_command(const char *name);
void ns_print_analysis_usage(FILE *out);

int ns_cmd_train(int argc, char **argv);
int ns_cmd_eval(int argc, char **argv);
int ns_cmd_debug_step(int argc, char **argv);
int ns_cmd_plot(int argc, char **argv);            /* analysis/cmd_plot.c */
int ns_cmd_compare(int argc, char **argv);         /* analysis/compare.c */
int ns_cmd_study(int argc, char **argv);           /* analysis/study.c */
int ns_cmd_watch(int argc, char **argv);           /* analysis/watch.c */
int ns_cmd_export_notebook(int argc, char **argv); /* notebooks-export/notebook.c */

#endif
