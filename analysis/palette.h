/* One look per normalization scheme in every figure: a fixed colour keyed by the scheme's name
 * (never by argument order), a dash type and a marker, so a scheme is recognised across figures
 * and runs, and a curve lying exactly on another (LN under PN-V) still shows through its gaps
 * and markers. Names this version does not know get a colour, dash and marker derived from the
 * name itself: deterministic, the same in every figure. */
#ifndef NS_PALETTE_H
#define NS_PALETTE_H

typedef struct {
    char rgb[8]; /* "#RRGGBB" */
    int dash;    /* gnuplot dash type 1..5 (1 = solid) */
    int point;   /* gnuplot point type */
} NsSchemeStyle;

/* The style of scheme `scheme` ("layer", "batch", ..., or any other name). `variant` > 0 is the
 * k-th further run of the same scheme in one figure (seeds, positions): same colour, another
 * dash and marker. */
void ns_scheme_style(const char *scheme, int variant, NsSchemeStyle *out);

/* Whether the scheme has a fixed entry (not the derived fallback). */
int ns_scheme_style_known(const char *scheme);

#endif
