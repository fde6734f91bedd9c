#include "sanitize.h"

#include <stdio.h>
#include <string.h>

enum { ESC = 0x1b, BAD_UTF8 = -1 };

/* The next character of s: returns its byte length (at least 1) and its code point in *cp, or
 * BAD_UTF8 for a byte that does not start a well-formed UTF-8 sequence. */
static size_t utf8_next(const unsigned char *s, long *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (s[0] > 0xf4)
        n = 0;
    long v = n == 2 ? s[0] & 0x1f : n == 3 ? s[0] & 0x0f : s[0] & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) { /* also stops at the terminating NUL */
            n = 0;
            break;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
    if (n == 0 || (n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff)) {
        *cp = BAD_UTF8;
        return 1;
    }
    *cp = v;
    return n;
}

/* Bytes of the escape sequence at s (s[0] == ESC): CSI (ESC [ ... final byte), OSC, DCS and
 * the like (ESC ] ... BEL or ESC \), else ESC and the one character after it. */
static size_t esc_length(const unsigned char *s)
{
    size_t i = 1;
    if (s[1] == '[') {
        for (i = 2; s[i] && !(s[i] >= 0x40 && s[i] <= 0x7e); i++)
            ;
        return s[i] ? i + 1 : i;
    }
    if (s[1] == ']' || s[1] == 'P' || s[1] == '_' || s[1] == '^' || s[1] == 'X') {
        for (i = 2; s[i] && s[i] != 0x07 && !(s[i] == ESC && s[i + 1] == '\\'); i++)
            ;
        return s[i] == 0x07 ? i + 1 : s[i] == ESC ? i + 2 : i;
    }
    return s[1] ? 2 : 1;
}

/* Characters no artifact shows: C0 and C1 controls, DEL, and the invisible ones that reorder or
 * break text (bidirectional overrides and isolates, line and paragraph separators). */
static int is_control(long cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

/* How one kind of artifact writes a character: the text to put instead (NULL: the character's
 * own bytes). Called for printable characters and for '\n', '\r', '\t'. */
typedef const char *(*EscapeFn)(long cp, char *piece);

/* Appends n bytes when they fit whole (with room for what closes the string); 0 when not. */
static int put(char *buf, size_t len, size_t *o, size_t reserve, const char *p, size_t n)
{
    if (*o + n + reserve + 1 > len)
        return 0;
    memcpy(buf + *o, p, n);
    *o += n;
    return 1;
}

/* The loop every kind shares: s into buf between `open` and `close`, each character through
 * escape. */
static const char *sanitize(char *buf, size_t len, const char *s, const char *open,
                            const char *close, EscapeFn escape)
{
    size_t o = 0, reserve = strlen(close);
    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (strlen(open) + reserve + 1 > len)
        return buf;
    put(buf, len, &o, reserve, open, strlen(open));
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    int fits = 1;
    while (*p && fits) {
        if (*p == ESC) {
            p += esc_length(p);
            continue;
        }
        long cp;
        size_t n = utf8_next(p, &cp);
        char piece[16];
        const char *text = (const char *)p;
        size_t tn = n;
        if (cp == BAD_UTF8) {
            text = "\xef\xbf\xbd", tn = 3; /* U+FFFD */
        } else if (is_control(cp) && cp != '\n' && cp != '\r' && cp != '\t') {
            tn = 0;
        } else {
            const char *e = escape(cp, piece);
            if (e)
                text = e, tn = strlen(e);
        }
        fits = put(buf, len, &o, reserve, text, tn);
        p += n;
    }
    memcpy(buf + o, close, reserve + 1);
    return buf;
}

static const char *space_for_breaks(long cp)
{
    return cp == '\n' || cp == '\r' || cp == '\t' ? " " : NULL;
}

static const char *text_escape(long cp, char *piece)
{
    (void)piece;
    return space_for_breaks(cp);
}

const char *ns_text_printable(char *buf, size_t len, const char *s)
{
    return sanitize(buf, len, s, "", "", text_escape);
}

static const char *gp_escape(long cp, char *piece)
{
    (void)piece;
    switch (cp) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '`': return "\\140";
    case '\n': return "\\n";
    default: return space_for_breaks(cp);
    }
}

const char *ns_gp_quote(char *buf, size_t len, const char *s)
{
    return sanitize(buf, len, s, "\"", "\"", gp_escape);
}

static const char *md_escape(long cp, char *piece)
{
    (void)piece;
    switch (cp) {
    case '|': return "\\|";
    case '[': return "\\[";
    case ']': return "\\]";
    case '`': return "\\`";
    case '\\': return "\\\\";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '&': return "&amp;";
    default: return space_for_breaks(cp);
    }
}

const char *ns_md_text(char *buf, size_t len, const char *s)
{
    return sanitize(buf, len, s, "", "", md_escape);
}

static const char *py_escape(long cp, char *piece)
{
    if (cp == '"' || cp == '\\') {
        snprintf(piece, 16, "\\%c", (char)cp);
        return piece;
    }
    if (cp < 0x20) { /* the breaks kept by sanitize: written as escapes, never raw */
        snprintf(piece, 16, "\\x%02lx", cp);
        return piece;
    }
    return NULL;
}

const char *ns_py_literal(char *buf, size_t len, const char *s)
{
    return sanitize(buf, len, s, "\"", "\"", py_escape);
}

int ns_text_has_control(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        long cp;
        size_t n = *p == ESC ? 0 : utf8_next(p, &cp);
        if (n == 0 || cp == BAD_UTF8 || is_control(cp))
            return 1;
        p += n;
    }
    return 0;
}
