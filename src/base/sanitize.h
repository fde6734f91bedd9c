/* Strings that came from outside (a run log's attributes, a flag, a path, a sweep's grid value)
 * as data in what normscope writes: a run log may come from someone else, and every artifact
 * made from it must stay what it is. One function per kind of artifact; every writer of that
 * kind uses it:
 *   - a terminal or a plain-text comment: ns_text_printable (no control character, no escape
 *     sequence: a log must not set the window title or start a new line in a `#` comment);
 *   - a gnuplot script: ns_gp_quote (gnuplot runs backquoted text even inside double quotes);
 *   - Markdown: ns_md_text (a `|` would add a table column, `<` raw HTML, `[` a link);
 *   - Python code (the notebook's code cells): ns_py_literal, a string literal, never code.
 *
 * Common to all: bytes that are not UTF-8 become U+FFFD; C0 and C1 control characters and DEL
 * are dropped, and so is a whole ESC sequence (CSI, OSC, or ESC and one character); a newline,
 * carriage return or tab becomes a space unless the kind keeps it (gnuplot: "\n" in a title).
 * Each writes into buf (len bytes, NUL-terminated, cut only between whole characters and
 * escapes) and returns buf. */
#ifndef NS_SANITIZE_H
#define NS_SANITIZE_H

#include <stddef.h>

const char *ns_text_printable(char *buf, size_t len, const char *s);
/* A gnuplot double-quoted literal, quotes included: `"` and `\` escaped, a backquote written as
 * the octal escape \140 (so the text still shows it but gnuplot's command substitution, done
 * before strings are parsed, never sees one), a newline as \n (a line break in a title). */
const char *ns_gp_quote(char *buf, size_t len, const char *s);
/* Text for a Markdown table cell or paragraph: `|`, `[`, `]`, backquote and `\` escaped with a
 * backslash; `<`, `>` and `&` as HTML entities; a newline is a space (a cell is one line). */
const char *ns_md_text(char *buf, size_t len, const char *s);
/* A Python 3 string literal, quotes included ("..."): `"` and `\` escaped, every character
 * that is not printable written as \xHH. */
const char *ns_py_literal(char *buf, size_t len, const char *s);

/* 1 if s has a character the functions above would drop or change for a terminal (a control
 * character, an escape sequence, a byte that is not UTF-8): for flags that must be refused. */
int ns_text_has_control(const char *s);

#endif
