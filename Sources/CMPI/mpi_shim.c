// See include/CMPI.h: OpenMPI through dlopen, so that Diffuse builds and runs without it.
#include "CMPI.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

// OpenMPI 4.x ABI (mpi.h): opaque handle pointers and the public status layout.
typedef void *MPI_Comm;
typedef void *MPI_Datatype;
typedef void *MPI_Op;
typedef void *MPI_Request;
typedef void *MPI_Errhandler;
typedef struct {
    int MPI_SOURCE, MPI_TAG, MPI_ERROR;
    int _cancelled;
    size_t _ucount;
} MPI_Status;
enum { MPI_THREAD_FUNNELED = 1 };
#define MPI_IN_PLACE ((void *)1)

static int (*p_init_thread)(int *, char ***, int, int *);
static int (*p_initialized)(int *);
static int (*p_finalize)(void);
static int (*p_abort)(MPI_Comm, int);
static int (*p_comm_rank)(MPI_Comm, int *);
static int (*p_comm_size)(MPI_Comm, int *);
static int (*p_comm_set_errhandler)(MPI_Comm, MPI_Errhandler);
static int (*p_error_string)(int, char *, int *);
static int (*p_get_processor_name)(char *, int *);
static int (*p_iallreduce)(const void *, void *, int, MPI_Datatype, MPI_Op, MPI_Comm, MPI_Request *);
static int (*p_ibarrier)(MPI_Comm, MPI_Request *);
static int (*p_isend)(const void *, int, MPI_Datatype, int, int, MPI_Comm, MPI_Request *);
static int (*p_irecv)(void *, int, MPI_Datatype, int, int, MPI_Comm, MPI_Request *);
static int (*p_test)(MPI_Request *, int *, MPI_Status *);

// The predefined objects: their addresses are the handles (MPI_COMM_WORLD = &ompi_mpi_comm_world).
static MPI_Comm comm_world;
static MPI_Datatype type_float, type_double, type_int;
static MPI_Op op_sum, op_max;
static MPI_Errhandler errors_return;

static void *library;

int diffuse_mpi_load(const char *path, char *error, int error_length) {
    if (library) return 0;
    const char *candidates[] = {path, "libmpi.so.40", "libmpi.so"};
    char reasons[1024] = "";
    for (int i = 0; i < 3 && !library; i++) {
        if (!candidates[i] || !candidates[i][0]) continue;
        // RTLD_GLOBAL: OpenMPI's components (dlopened by libmpi) resolve libmpi's symbols.
        library = dlopen(candidates[i], RTLD_NOW | RTLD_GLOBAL);
        if (!library) {
            const char *e = dlerror();
            size_t used = strlen(reasons);
            snprintf(reasons + used, sizeof reasons - used, "%s%s", used ? "; " : "", e ? e : candidates[i]);
        }
    }
    if (!library) {
        snprintf(error, (size_t)error_length, "cannot load OpenMPI's libmpi (install openmpi-bin and libopenmpi3): %s", reasons);
        return -1;
    }
#define LOOKUP(var, name)                                                                     \
    do {                                                                                      \
        *(void **)(&var) = dlsym(library, name);                                              \
        if (!var) {                                                                           \
            snprintf(error, (size_t)error_length, "libmpi has no symbol %s (not OpenMPI 4?)", name); \
            dlclose(library);                                                                 \
            library = NULL;                                                                   \
            return -1;                                                                        \
        }                                                                                     \
    } while (0)
    LOOKUP(p_init_thread, "MPI_Init_thread");
    LOOKUP(p_initialized, "MPI_Initialized");
    LOOKUP(p_finalize, "MPI_Finalize");
    LOOKUP(p_abort, "MPI_Abort");
    LOOKUP(p_comm_rank, "MPI_Comm_rank");
    LOOKUP(p_comm_size, "MPI_Comm_size");
    LOOKUP(p_comm_set_errhandler, "MPI_Comm_set_errhandler");
    LOOKUP(p_error_string, "MPI_Error_string");
    LOOKUP(p_get_processor_name, "MPI_Get_processor_name");
    LOOKUP(p_iallreduce, "MPI_Iallreduce");
    LOOKUP(p_ibarrier, "MPI_Ibarrier");
    LOOKUP(p_isend, "MPI_Isend");
    LOOKUP(p_irecv, "MPI_Irecv");
    LOOKUP(p_test, "MPI_Test");
    LOOKUP(comm_world, "ompi_mpi_comm_world");
    LOOKUP(type_float, "ompi_mpi_float");
    LOOKUP(type_double, "ompi_mpi_double");
    LOOKUP(type_int, "ompi_mpi_int");
    LOOKUP(op_sum, "ompi_mpi_op_sum");
    LOOKUP(op_max, "ompi_mpi_op_max");
    LOOKUP(errors_return, "ompi_mpi_errors_return");
#undef LOOKUP
    return 0;
}

int diffuse_mpi_init(int *rank, int *size) {
    int provided = 0, initialized = 0, rc;
    p_initialized(&initialized);
    if (!initialized) {
        rc = p_init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc) return rc;
    }
    rc = p_comm_set_errhandler(comm_world, errors_return);
    if (rc) return rc;
    rc = p_comm_rank(comm_world, rank);
    if (rc) return rc;
    return p_comm_size(comm_world, size);
}

int diffuse_mpi_finalize(void) { return p_finalize(); }

int diffuse_mpi_abort(int code) { return p_abort(comm_world, code); }

void diffuse_mpi_error_string(int code, char *text, int length) {
    char buffer[512];
    int n = 0;
    if (!p_error_string || p_error_string(code, buffer, &n) != 0) snprintf(buffer, sizeof buffer, "MPI error %d", code);
    else buffer[n < (int)sizeof buffer ? n : (int)sizeof buffer - 1] = 0;
    snprintf(text, (size_t)length, "%s", buffer);
}

int diffuse_mpi_processor_name(char *name, int length) {
    char buffer[512];
    int n = 0;
    int rc = p_get_processor_name(buffer, &n);
    buffer[n < (int)sizeof buffer ? n : (int)sizeof buffer - 1] = 0;
    snprintf(name, (size_t)length, "%s", buffer);
    return rc;
}

int diffuse_mpi_iallreduce_sum_float(float *buffer, int count, diffuse_mpi_request *request) {
    return p_iallreduce(MPI_IN_PLACE, buffer, count, type_float, op_sum, comm_world, request);
}

int diffuse_mpi_iallreduce_max_double(double *buffer, int count, diffuse_mpi_request *request) {
    return p_iallreduce(MPI_IN_PLACE, buffer, count, type_double, op_max, comm_world, request);
}

int diffuse_mpi_ibarrier(diffuse_mpi_request *request) { return p_ibarrier(comm_world, request); }

int diffuse_mpi_isend_int(const int *buffer, int count, int peer, int tag, diffuse_mpi_request *request) {
    return p_isend(buffer, count, type_int, peer, tag, comm_world, request);
}

int diffuse_mpi_irecv_int(int *buffer, int count, int peer, int tag, diffuse_mpi_request *request) {
    return p_irecv(buffer, count, type_int, peer, tag, comm_world, request);
}

int diffuse_mpi_test(diffuse_mpi_request *request, int *done) {
    MPI_Status status;
    return p_test(request, done, &status);
}
