// A small C shim over OpenMPI (4.x, libmpi.so.40) loaded at run time.
//
// Swift cannot import MPI's handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM are macros over
// OpenMPI's exported predefined objects), and linking libmpi at build time would break the
// build where libopenmpi-dev is absent. So this shim dlopens libmpi.so.40 when a process
// finds itself under mpirun, looks up the few functions and predefined objects Diffuse uses
// (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_double, ompi_mpi_op_sum, ompi_mpi_op_max,
// ompi_mpi_errors_return) and wraps them in plain functions. The typedefs below are OpenMPI's
// ABI (mpi.h of 4.x: handles are pointers to opaque structs, MPI_Status is 3 ints + 2 words).
#ifndef DIFFUSE_CMPI_H
#define DIFFUSE_CMPI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An outstanding nonblocking operation (an MPI_Request).
typedef void *diffuse_mpi_request;

/// Loads libmpi (the first of `path`, libmpi.so.40, libmpi.so that opens) and its symbols.
/// Returns 0, or -1 with the reason in `error`.
int diffuse_mpi_load(const char *path, char *error, int error_length);
/// MPI_Init_thread(FUNNELED) and MPI_ERRORS_RETURN on MPI_COMM_WORLD; the rank and size.
int diffuse_mpi_init(int *rank, int *size);
int diffuse_mpi_finalize(void);
/// MPI_Abort(MPI_COMM_WORLD, code): mpirun ends every rank.
int diffuse_mpi_abort(int code);
/// MPI_Error_string into `text`.
void diffuse_mpi_error_string(int code, char *text, int length);
/// MPI_Get_processor_name into `name`.
int diffuse_mpi_processor_name(char *name, int length);

/// MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD).
int diffuse_mpi_iallreduce_sum_float(float *buffer, int count, diffuse_mpi_request *request);
/// MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD).
int diffuse_mpi_iallreduce_max_double(double *buffer, int count, diffuse_mpi_request *request);
/// MPI_Ibarrier(MPI_COMM_WORLD).
int diffuse_mpi_ibarrier(diffuse_mpi_request *request);
/// MPI_Isend / MPI_Irecv of `count` ints to / from rank `peer` with `tag`.
int diffuse_mpi_isend_int(const int *buffer, int count, int peer, int tag, diffuse_mpi_request *request);
int diffuse_mpi_irecv_int(int *buffer, int count, int peer, int tag, diffuse_mpi_request *request);
/// MPI_Test: `done` set to 1 when the request completed (it is then freed).
int diffuse_mpi_test(diffuse_mpi_request *request, int *done);

#ifdef __cplusplus
}
#endif

#endif
