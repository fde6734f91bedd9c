#include "runlog_schema.h"

#include <stdio.h>
#include <string.h>

const char *ns_runlog_path(char *buf, size_t n, const char *group, const char *series)
{
    snprintf(buf, n, "%s/%s", group, series);
    return buf;
}

const char *ns_runlog_site_path(char *buf, size_t n, const char *site, const char *series)
{
    if (series)
        snprintf(buf, n, NS_RUNLOG_NORMS "/%s/%s", site, series);
    else
        snprintf(buf, n, NS_RUNLOG_NORMS "/%s", site);
    return buf;
}

const char *ns_runlog_vector_path(char *buf, size_t n, const char *site, const char *series)
{
    snprintf(buf, n, NS_RUNLOG_NORMS "/%s/vectors/%s", site, series);
    return buf;
}

const char *ns_runlog_param_path(char *buf, size_t n, const char *tensor, const char *series)
{
    snprintf(buf, n, NS_RUNLOG_PARAMS "/%s/%s", tensor, series);
    return buf;
}

int ns_runlog_is_step_path(const char *path)
{
    const char *leaf = strrchr(path, '/');
    return leaf && strcmp(leaf + 1, NS_RUNLOG_STEP) == 0;
}

const char *ns_runlog_site_name(const char *name)
{
    static const char prefix[] = NS_RUNLOG_NORMS "/";
    while (*name == '/')
        name++;
    return strncmp(name, prefix, sizeof prefix - 1) == 0 ? name + sizeof prefix - 1 : name;
}

const NsSchemaAttr *ns_schema_root_attr(const char *name)
{
    for (int i = 0; i < NS_SCHEMA_N_ROOT_ATTRS; i++)
        if (strcmp(NS_SCHEMA_ROOT_ATTRS[i].name, name) == 0)
            return &NS_SCHEMA_ROOT_ATTRS[i];
    return NULL;
}

const char *ns_schema_dtype_name(NsSchemaDtype dtype)
{
    static const char *const names[] = {"int64", "float64", "float32", "string"};
    return names[dtype];
}
