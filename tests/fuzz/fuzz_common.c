#define _GNU_SOURCE
#include "fuzz_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Everything lives under one private directory in /dev/shm (memory) when there is one: the
 * inputs as files in0..in3 (libhdf5 opens files by name and resolves links, so an anonymous
 * memory file will not do) and out/, the readers' output. */
static char g_base[512], g_out[600];

static void empty_dir(const char *dir, int depth);

/* At the end of a fuzzing session; a crash leaves the directory for a look at what was written. */
static void remove_base(void)
{
    empty_dir(g_base, 2);
    rmdir(g_base);
}

static void make_base(void)
{
    if (g_base[0])
        return;
    struct stat st;
    const char *tmp = getenv("TMPDIR");
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
        tmp = "/dev/shm";
    snprintf(g_base, sizeof g_base, "%s/normscope-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_base)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    snprintf(g_out, sizeof g_out, "%s/out", g_base);
    if (mkdir(g_out, 0700) != 0) {
        perror("fuzz: mkdir");
        abort();
    }
    atexit(remove_base);
}

const char *fuzz_file(int slot, const uint8_t *data, size_t size)
{
    static char path[4][640];
    if (slot < 0 || slot >= 4)
        abort();
    make_base();
    snprintf(path[slot], sizeof path[slot], "%s/in%d", g_base, slot);
    int fd = open(path[slot], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) != 0) {
        perror("fuzz: writing the input file");
        abort();
    }
    return path[slot];
}

const char *fuzz_scratch(void)
{
    make_base();
    return g_out;
}

/* The readers write flat files (figures, tables) into the directory they are given, or a
 * directory of them: two levels are emptied. */
static void empty_dir(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[1200];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && depth > 0) {
            empty_dir(path, depth - 1);
            rmdir(path);
        }
    }
    closedir(d);
}

void fuzz_scratch_clean(void) { empty_dir(fuzz_scratch(), 1); }

void fuzz_quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

uint32_t fuzz_take(const uint8_t **data, size_t *size, int bytes)
{
    uint32_t v = 0;
    for (int i = 0; i < bytes && *size > 0; i++, (*data)++, (*size)--)
        v |= (uint32_t)**data << (8 * i);
    return v;
}
