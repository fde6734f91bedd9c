/* Writing tables: growable Markdown text (to a file and to stdout), CSV fields, and warnings that
 * are both printed and kept as the table's notes. Shared by compare and its seed and site
 * tables. */
#ifndef NS_TABLE_H
#define NS_TABLE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *s;
    size_t len, cap;
} NsText;

void ns_text_printf(NsText *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Markdown cell text (ns_md_text: no markup, no column, no line from the string). */
void ns_text_md(NsText *t, const char *s);
/* Prints "normscope: warning: <line>" and keeps "- <line>" in notes. */
void ns_text_note(NsText *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ns_text_write(const char *path, const NsText *t, char *err);
void ns_text_free(NsText *t);

/* CSV: a field quoted when it holds ',', '"' or a newline; a number as %.8g, NaN as empty. */
void ns_csv_text(FILE *f, const char *s);
const char *ns_csv_num(char *buf, size_t len, double v);

#endif
