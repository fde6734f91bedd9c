/* The documentation that cannot drift (issue 13):
 *   1. `meson install` installs the manual page normscope(1) and the bash completion, both
 *      generated from the option tables; `man -l` renders the installed page without warnings,
 *      and it names every command and every flag of the run table;
 *   2. the completion script is valid bash and completes commands, flags and named values;
 *   3. README.md's flag reference names every flag that any command's --help lists (taken from
 *      the generated completion, which reads every --help) and every flag row of NS_RUN_OPTIONS.
 * `man` comes from man-db (scripts/setup.sh installs it); without it test 1 skips, saying so. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "run_config.h"

static const char *installed_man, *installed_completion;

/* The path of the one file under dir whose path ends with suffix (find), or NULL. */
static const char *find_under(const char *dir, const char *suffix)
{
    char cmd[2048], line[2048];
    snprintf(cmd, sizeof cmd, "find '%s' -type f -path '*%s'", dir, suffix);
    FILE *p = popen(cmd, "r");
    const char *found = NULL;
    if (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        found = keep(strdup(line));
    }
    if (p)
        pclose(p);
    return found;
}

/* meson install into a scratch DESTDIR, once for the group. */
static int setup(void **state)
{
    (void)state;
    if (harness_setup() != 0)
        return -1;
    const char *build = getenv("NS_BUILD_ROOT");
    if (!build) {
        fprintf(stderr, "NS_BUILD_ROOT is not set (tests/meson.build sets it)\n");
        return -1;
    }
    const char *dest = scratch("dest");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "meson install -C '%s' --no-rebuild --destdir '%s' >'%s' 2>&1",
             build, dest, scratch("install.log"));
    if (system(cmd) != 0) {
        fprintf(stderr, "meson install failed:\n%s\n",
                (char *)keep(slurp(scratch("install.log"), NULL)));
        return -1;
    }
    installed_man = find_under(dest, "/man1/normscope.1");
    installed_completion = find_under(dest, "/bash-completion/completions/normscope");
    return 0;
}

/* stdout of a shell command (in the pool), its exit status in *status. */
static char *shell(const char *cmd, int *status)
{
    const char *out = scratch("shell.out");
    char full[8192];
    snprintf(full, sizeof full, "%s >'%s'", cmd, out);
    *status = system(full);
    return keep(slurp(out, NULL));
}

TEST(man_renders_installed_page)
{
    assert_non_null(installed_man);
    if (!on_path("man")) {
        print_message("SKIPPED: no 'man' program on PATH (package man-db; scripts/setup.sh "
                      "installs it): the installed page %s was not rendered\n", installed_man);
        skip();
    }
    int status;
    char *page = shell(fmt("MANWIDTH=100 man --warnings -l '%s' 2>'%s'", installed_man,
                           scratch("man.err")), &status);
    char *warnings = keep(slurp(scratch("man.err"), NULL));
    assert_int_equal(status, 0);
    SOFT(warnings[0] == '\0', "man -l warned:\n%s\n", warnings);
    SOFT(strstr(page, "NORMSCOPE(1)") && strstr(page, "SYNOPSIS") && strstr(page, "EXIT STATUS"),
         "the page lacks its sections:\n%.400s\n", page);
    static const char *const commands[] = {"train", "eval", "debug-step", "plot", "compare",
                                           "study", "watch", "export-notebook"};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        SOFT(strstr(page, fmt("\n   %s\n", commands[i])), "no section for %s\n", commands[i]);
    for (size_t i = 0; i < NS_N_RUN_OPTIONS; i++) {
        const char *flag = NS_RUN_OPTIONS[i].flag;
        SOFT(!flag || strstr(page, fmt("%s\n", flag)) || strstr(page, fmt("%s ", flag)),
             "the page does not list %s\n", flag);
    }
    SOFT(strstr(page, "--norm-stats WHICH"), "eval's own flags are missing\n");
}

/* Completions of a command line (words as typed, the last being completed). */
static char *complete(const char *line)
{
    int status;
    char *out = shell(fmt("bash -c 'source \"%s\"; COMP_WORDS=(%s); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                          "_normscope; printf \"%%s \" \"${COMPREPLY[@]}\"'",
                          installed_completion, line), &status);
    assert_int_equal(status, 0);
    return out;
}

TEST(bash_completion_completes)
{
    assert_non_null(installed_completion);
    int status;
    shell(fmt("bash -n '%s'", installed_completion), &status);
    assert_int_equal(status, 0);
    char *c = complete("normscope tr");
    SOFT(strcmp(c, "train ") == 0, "normscope tr -> '%s'\n", c);
    c = complete("normscope eval --norm-s");
    SOFT(strcmp(c, "--norm-stats ") == 0, "eval --norm-s -> '%s'\n", c);
    c = complete("normscope train --overw");
    SOFT(strcmp(c, "--overwrite ") == 0, "train --overw -> '%s'\n", c);
    c = complete("normscope train --norm power");
    SOFT(strstr(c, "power ") && strstr(c, "power-v ") && strstr(c, "power-official ") &&
             !strstr(c, "layer"), "train --norm power -> '%s'\n", c);
}

/* The README's "### Flag reference" section (to the next heading). */
static char *flag_reference(void)
{
    const char *root = getenv("NS_SOURCE_ROOT");
    assert_non_null(root);
    char *readme = keep(slurp(fmt("%s/README.md", root), NULL));
    char *start = strstr(readme, "\n### Flag reference\n");
    assert_non_null(start);
    start += 2;
    char *end = strstr(start, "\n#");
    if (end)
        *end = '\0';
    return start;
}

/* Whether text names `flag` as a whole word: "`--flag" followed by a space or "`". */
static int names_flag(const char *text, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = text; (p = strstr(p, flag)); p += n)
        if (p > text && p[-1] == '`' && (p[n] == '`' || p[n] == ' '))
            return 1;
    return 0;
}

TEST(readme_names_every_flag)
{
    const char *ref = flag_reference();
    for (size_t i = 0; i < NS_N_RUN_OPTIONS; i++) {
        const char *flag = NS_RUN_OPTIONS[i].flag;
        SOFT(!flag || names_flag(ref, flag), "README's flag reference lacks %s (run table)\n",
             flag);
    }
    /* every command's flags, as its --help lists them: the completion's `cmd) flags="..."` */
    assert_non_null(installed_completion);
    char *script = keep(slurp(installed_completion, NULL));
    for (char *p = script; (p = strstr(p, ") flags=\""));) {
        char *line = p;
        while (line > script && line[-1] != '\n')
            line--;
        char *cmd = keep(strndup(line + strspn(line, " "), (size_t)(p - line) - strspn(line, " ")));
        p += 9;
        char *end = strchr(p, '"');
        assert_non_null(end);
        char *flags = keep(strndup(p, (size_t)(end - p)));
        p = end;
        if (strcmp(cmd, "help") == 0)
            continue;
        for (char *f = strtok(flags, " "); f; f = strtok(NULL, " "))
            SOFT(names_flag(ref, f), "README's flag reference lacks %s of '%s'\n", f, cmd);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(man_renders_installed_page),
        cmocka_unit_test(bash_completion_completes),
        cmocka_unit_test(readme_names_every_flag),
    };
    test_filter_from_env();
    return cmocka_run_group_tests(tests, setup, group_teardown);
}
