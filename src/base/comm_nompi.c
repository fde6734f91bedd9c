/* A build without MPI (-Dmpi=disabled, or no MPI found): always one process. Started by a
 * launcher anyway, every copy would train the whole run alone and write the same files, so
 * that is refused. */
#include <stdio.h>
#include <stdlib.h>

#include "comm.h"
#include "util.h"

int ns_comm_launch(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* One process under a launcher (mpirun -np 1) is just a run. */
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"};
    int many = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        many |= getenv(vars[i]) && atoi(getenv(vars[i])) > 1;
    if (!ns_comm_launched() || !many)
        return 0;
    fprintf(stderr, "normscope: started by an MPI launcher, but this normscope was built without "
                    "MPI; install Open MPI (scripts/setup.sh) and rebuild with -Dmpi=enabled, or "
                    "run it without mpirun\n");
    return -1;
}

int ns_comm_finish(int code) { return code; }
