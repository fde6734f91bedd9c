/* The registry of normalization schemes: one line per scheme, X(kind, descriptor), in the order
 * `--norm` lists them. The line declares the scheme's NsNormKind value (config.h builds the enum
 * from this list) and names the NsNormScheme its file defines (norm.h declares them all, and
 * ns_norm_scheme_for maps one to the other).
 *
 * Adding a scheme: write norm_<name>.c ending in `const NsNormScheme ns_scheme_<name> = {...}`
 * (norm.h says what each field means), add its line below, and add the file to the numerics list
 * in meson.build. Names, help text, state allocation, checkpoints, probes and the analysis all
 * read the descriptor, so nothing else changes. Kinds are never stored as numbers (logs and
 * checkpoints hold the name), so the order only decides the listing. */
#ifndef NS_NORM_SCHEMES_H
#define NS_NORM_SCHEMES_H

#define NS_NORM_SCHEMES(X)                                                                     \
    X(NS_NORM_LAYER, ns_scheme_layer)                                                          \
    X(NS_NORM_BATCH, ns_scheme_batch)                                                          \
    X(NS_NORM_BATCH_REGULARIZED, ns_scheme_batch_regularized)                                  \
    X(NS_NORM_BATCH_OFFICIAL, ns_scheme_batch_official)                                        \
    X(NS_NORM_POWER_V, ns_scheme_power_v)                                                      \
    X(NS_NORM_POWER, ns_scheme_power)                                                          \
    X(NS_NORM_POWER_OFFICIAL, ns_scheme_power_official)                                        \
    X(NS_NORM_RMS, ns_scheme_rms)                                                              \
    X(NS_NORM_NONE, ns_scheme_none)

#endif
