/* The MPI communicator: MPI_COMM_WORLD behind the NsComm operations, plus start-up and the
 * end-of-run agreement on who reports an error.
 *
 * Output: every rank computes the same thing, so only rank 0 talks. The other ranks' stdout goes
 * to /dev/null and their stderr to a private temporary file; if such a rank fails alone, the
 * last line it wrote there (its error) is printed with its rank in front before the run is
 * aborted. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "util.h"

void ns_comm_set_world(NsComm *c);

static void timed(NsComm *c, double t0) { c->reduce_seconds += ns_now_seconds() - t0; }

/* MPI counts are ints: long buffers go in pieces. */
#define PIECE ((size_t)1 << 28)

static void mpi_sum(NsComm *c, void *x, size_t n, size_t size, MPI_Datatype type)
{
    double t0 = ns_now_seconds();
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        MPI_Allreduce(MPI_IN_PLACE, (char *)x + off * size, (int)k, type, MPI_SUM,
                      MPI_COMM_WORLD);
    }
    c->reduce_bytes += (int64_t)(n * size);
    timed(c, t0);
}

static void mpi_sum_f64(NsComm *c, double *x, size_t n) { mpi_sum(c, x, n, 8, MPI_DOUBLE); }
static void mpi_sum_f32(NsComm *c, float *x, size_t n) { mpi_sum(c, x, n, 4, MPI_FLOAT); }

static void mpi_max_i64(NsComm *c, int64_t *x, size_t n)
{
    double t0 = ns_now_seconds();
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    timed(c, t0);
}

static void mpi_bcast(NsComm *c, void *buf, size_t bytes, int root)
{
    double t0 = ns_now_seconds();
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t k = bytes - off < PIECE ? bytes - off : PIECE;
        MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
    timed(c, t0);
}

static void mpi_allgather_f64(NsComm *c, const double *in, size_t n, double *out)
{
    double t0 = ns_now_seconds();
    MPI_Allgather(in, (int)n, MPI_DOUBLE, out, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
    timed(c, t0);
}

static int mpi_meet(NsComm *c, double seconds)
{
    (void)c;
    MPI_Request req;
    MPI_Ibarrier(MPI_COMM_WORLD, &req);
    double end = ns_now_seconds() + seconds;
    for (;;) {
        int done = 0;
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done)
            return 1;
        if (ns_now_seconds() > end)
            return 0; /* the request stays pending: the caller aborts */
        struct timespec nap = {0, 2000000};
        nanosleep(&nap, NULL);
    }
}

static void mpi_abort(NsComm *c, int code)
{
    (void)c;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* not reached */
}

static NsComm mpi_world = {
    .sum_f64 = mpi_sum_f64,
    .sum_f32 = mpi_sum_f32,
    .max_i64 = mpi_max_i64,
    .bcast = mpi_bcast,
    .allgather_f64 = mpi_allgather_f64,
    .meet = mpi_meet,
    .abort = mpi_abort,
};

static FILE *quiet_stderr; /* rank > 0: where its stderr went */
static int real_stderr = -1;

/* Ranks other than 0 keep quiet (see the top of the file). */
static void silence(void)
{
    fflush(stdout);
    fflush(stderr);
    if (!freopen("/dev/null", "w", stdout))
        return;
    quiet_stderr = tmpfile();
    if (!quiet_stderr)
        return;
    real_stderr = dup(STDERR_FILENO);
    dup2(fileno(quiet_stderr), STDERR_FILENO);
}

/* The last non-empty line this rank wrote to stderr, into out. */
static void last_error_line(char *out, size_t n)
{
    out[0] = '\0';
    if (!quiet_stderr)
        return;
    fflush(stderr);
    rewind(quiet_stderr);
    char line[NS_ERRLEN * 2];
    while (fgets(line, sizeof line, quiet_stderr)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0])
            snprintf(out, n, "%s", line);
    }
}

int ns_comm_launch(int *argc, char ***argv)
{
    if (!ns_comm_launched())
        return 0;
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_world.size);
    ns_comm_set_world(&mpi_world);
    if (mpi_world.rank > 0)
        silence();
    return 0;
}

/* Seconds a failing rank waits for the others to fail the same way before it speaks for itself
 * and aborts: long enough for ranks that read their input at slightly different times. */
#define ALONE_AFTER 5.0

int ns_comm_finish(int code)
{
    NsComm *c = &mpi_world;
    if (ns_comm_world() != c)
        return code;
    /* A rank that succeeded waits as long as it takes (rank 0 may be writing a checkpoint);
     * a failing one only ALONE_AFTER seconds. */
    int all = c->meet(c, code == 0 ? 1e9 : ALONE_AFTER);
    int64_t codes[2] = {code, 0};
    if (all) {
        /* codes[1]: whether rank 0 failed, i.e. has already said why. */
        int64_t mine[2] = {code, c->rank == 0 && code != 0};
        memcpy(codes, mine, sizeof mine);
        c->max_i64(c, codes, 2);
    }
    if (code != 0 && (!all || !codes[1]) && c->rank > 0) {
        char line[NS_ERRLEN * 2];
        last_error_line(line, sizeof line);
        if (real_stderr >= 0)
            dup2(real_stderr, STDERR_FILENO);
        fprintf(stderr, "normscope: rank %d of %d: %s\n", c->rank, c->size,
                line[0] ? line : "failed without a message");
    }
    if (!all) {
        if (c->rank == 0)
            fprintf(stderr, "normscope: rank 0 of %d stopped the run (the error above)\n",
                    c->size);
        c->abort(c, code);
    }
    MPI_Finalize();
    return (int)codes[0];
}
