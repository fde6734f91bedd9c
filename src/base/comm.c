/* The serial communicator (one process: every collective is the identity) and the world
 * pointer. */
#include "comm.h"

#include <stdlib.h>

static void serial_sum_f64(NsComm *c, double *x, size_t n) { (void)c, (void)x, (void)n; }
static void serial_sum_f32(NsComm *c, float *x, size_t n) { (void)c, (void)x, (void)n; }
static void serial_max_i64(NsComm *c, int64_t *x, size_t n) { (void)c, (void)x, (void)n; }
static void serial_bcast(NsComm *c, void *buf, size_t bytes, int root)
{
    (void)c, (void)buf, (void)bytes, (void)root;
}

static void serial_allgather_f64(NsComm *c, const double *in, size_t n, double *out)
{
    (void)c;
    for (size_t i = 0; i < n; i++)
        out[i] = in[i];
}

static int serial_meet(NsComm *c, double seconds) { return (void)c, (void)seconds, 1; }
static void serial_abort(NsComm *c, int code) { (void)c, exit(code); }

static NsComm serial = {
    .rank = 0,
    .size = 1,
    .sum_f64 = serial_sum_f64,
    .sum_f32 = serial_sum_f32,
    .max_i64 = serial_max_i64,
    .bcast = serial_bcast,
    .allgather_f64 = serial_allgather_f64,
    .meet = serial_meet,
    .abort = serial_abort,
};

static NsComm *world = &serial;

NsComm *ns_comm_world(void) { return world; }

/* comm_mpi.c sets the world; comm_nompi.c never does. */
void ns_comm_set_world(NsComm *c);
void ns_comm_set_world(NsComm *c) { world = c ? c : &serial; }

int ns_comm_launched(void)
{
    /* Open MPI's mpirun, PMIx launchers (srun --mpi=pmix, prrte), and PMI-1/2 launchers. */
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}
