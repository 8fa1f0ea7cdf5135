// Open MPI's C interface. Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE) are
// macros over casts of global symbols, which Swift cannot import; these functions hand them over.
#include <mpi.h>

static inline MPI_Comm rnnkit_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype rnnkit_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype rnnkit_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype rnnkit_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype rnnkit_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype rnnkit_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op rnnkit_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op rnnkit_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op rnnkit_mpi_max(void) { return MPI_MAX; }
static inline void *rnnkit_mpi_in_place(void) { return MPI_IN_PLACE; }
