#include "table.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "sanitize.h"

void ns_text_printf(NsText *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)need + 1 > t->cap) {
        t->cap = 2 * (t->len + (size_t)need + 1);
        t->s = ns_xrealloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)need;
}

void ns_text_md(NsText *t, const char *s)
{
    char md[4096];
    ns_text_printf(t, "%s", ns_md_text(md, sizeof md, s));
}

/* Warnings: printed at once and repeated under the table, where the reader of the report
 * sees why a cell says n/a. */
void ns_text_note(NsText *notes, const char *fmt, ...)
{
    char line[NS_ERRLEN * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "normscope: warning: %s\n", line);
    ns_text_printf(notes, "- %s\n", line);
}

int ns_text_write(const char *path, const NsText *t, char *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    size_t w = t->len ? fwrite(t->s, 1, t->len, f) : 0;
    if (fclose(f) != 0 || w != t->len)
        return ns_fail(err, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

void ns_text_free(NsText *t)
{
    free(t->s);
    memset(t, 0, sizeof *t);
}

void ns_csv_text(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

const char *ns_csv_num(char *buf, size_t len, double v)
{
    if (isnan(v))
        buf[0] = '\0';
    else
        snprintf(buf, len, "%.8g", v);
    return buf;
}
