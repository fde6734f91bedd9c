#include "palette.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Okabe-Ito colours (distinguishable with the common colour-vision deficiencies) for the
 * paper's schemes; a scheme and its release variant share a hue family. */
static const struct {
    const char *scheme, *rgb;
    int dash, point;
} FIXED[] = {
    {"layer", "#0072B2", 1, 7},           /* blue, solid, filled circle */
    {"batch", "#D55E00", 1, 5},           /* vermillion, solid, filled square */
    {"batch-official", "#E69F00", 4, 4},  /* orange, dash-dot, open square */
    {"batch-regularized", "#B2182B", 3, 15}, /* dark red, dotted, filled pentagon */
    {"power", "#009E73", 1, 9},           /* green, solid, filled triangle */
    {"power-v", "#CC79A7", 2, 13},        /* purple, dashed, filled diamond */
    {"power-official", "#56B4E9", 5, 8},  /* sky blue, dash-dot-dot, open triangle */
    {"rms", "#8C564B", 3, 11},            /* brown, dotted, filled triangle down */
    {"none", "#555555", 1, 2},            /* dark grey, solid, cross */
};
#define N_FIXED (sizeof FIXED / sizeof FIXED[0])

/* For names without an entry: dark, saturated colours far from the fixed ones. */
static const char *const FALLBACK[] = {"#332288", "#882255", "#117733", "#44AA99",
                                       "#999933", "#AA4499", "#661100", "#6699CC"};
#define N_FALLBACK (sizeof FALLBACK / sizeof FALLBACK[0])

/* Markers cycled through by further runs of one scheme. */
static const int POINTS[] = {7, 5, 9, 13, 11, 6, 4, 8, 12, 10, 1, 2, 3};
#define N_POINTS (int)(sizeof POINTS / sizeof POINTS[0])

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int point_slot(int point)
{
    for (int k = 0; k < N_POINTS; k++)
        if (POINTS[k] == point)
            return k;
    return 0;
}

int ns_scheme_style_known(const char *scheme)
{
    for (size_t k = 0; scheme && k < N_FIXED; k++)
        if (strcmp(FIXED[k].scheme, scheme) == 0)
            return 1;
    return 0;
}

void ns_scheme_style(const char *scheme, int variant, NsSchemeStyle *out)
{
    const char *rgb = NULL;
    int dash = 1, point = 7;
    for (size_t k = 0; scheme && k < N_FIXED && !rgb; k++)
        if (strcmp(FIXED[k].scheme, scheme) == 0)
            rgb = FIXED[k].rgb, dash = FIXED[k].dash, point = FIXED[k].point;
    if (!rgb) {
        uint32_t h = fnv1a(scheme ? scheme : "");
        rgb = FALLBACK[h % N_FALLBACK];
        dash = 1 + (int)((h >> 8) % 5);
        point = POINTS[(h >> 16) % N_POINTS];
    }
    if (variant > 0) { /* same colour: another dash type and marker */
        dash = 1 + (dash - 1 + variant) % 5;
        point = POINTS[(point_slot(point) + variant) % N_POINTS];
    }
    snprintf(out->rgb, sizeof out->rgb, "%s", rgb);
    out->dash = dash;
    out->point = point;
}
