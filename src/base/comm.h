/* The processes of one run, as the numerics see them: a rank, a size, and the few collective
 * operations data-parallel training needs. Everything above this header calls the operations
 * through the struct and never knows whether MPI is there: the serial communicator (size 1) makes
 * every operation a no-op, the MPI one (comm_mpi.c, built only with -Dmpi) calls MPI.
 *
 * Every operation is collective: every rank calls it, in the same order, with the same n. */
#ifndef NS_COMM_H
#define NS_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct NsComm NsComm;

struct NsComm {
    int rank, size;
    /* In place: x[i] becomes the sum (max) of x[i] over all ranks. */
    void (*sum_f64)(NsComm *c, double *x, size_t n);
    void (*sum_f32)(NsComm *c, float *x, size_t n);
    void (*max_i64)(NsComm *c, int64_t *x, size_t n);
    /* Copies root's bytes to every rank. */
    void (*bcast)(NsComm *c, void *buf, size_t bytes, int root);
    /* out[r*n + i] = in[i] of rank r, on every rank. */
    void (*allgather_f64)(NsComm *c, const double *in, size_t n, double *out);
    /* Waits until every rank has called it, or `seconds` have passed: 1 when all arrived. */
    int (*meet)(NsComm *c, double seconds);
    /* Ends every process of the run with this exit code (does not return). */
    void (*abort)(NsComm *c, int code);
    double reduce_seconds; /* wall time spent inside the operations above, for benchmarks */
    int64_t reduce_bytes;  /* bytes passed to sum_* (per rank), for benchmarks */
};

/* The communicator of this process: the serial one unless ns_comm_launch found a launcher. */
NsComm *ns_comm_world(void);

/* Called first thing in main: when the process was started by an MPI launcher (mpirun, srun;
 * seen from the environment they set) and MPI is built in, initialises MPI and makes it the
 * world. Without a launcher nothing happens, so a plain `normscope` never pays MPI's start-up.
 * Returns 0, or -1 when a launcher is present but this build has no MPI (message printed). */
int ns_comm_launch(int *argc, char ***argv);
/* Called last in main with the command's exit code; returns the run's exit code. With several
 * ranks it decides who speaks: when every rank gets here (the usual case, also for an error
 * every rank makes, like a bad flag) rank 0 has said everything and the other ranks stay
 * silent; a rank that fails alone prints its last error line prefixed with its rank and aborts
 * the run, so no rank waits for ever. */
int ns_comm_finish(int code);

/* Whether an MPI launcher started this process (environment only; no MPI call). */
int ns_comm_launched(void);

#endif
