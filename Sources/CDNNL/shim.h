// oneDNN 2.x C API (Debian libdnnl-dev). Macros that Swift cannot import are wrapped here.
#pragma once
#include <dnnl.h>

/// `DNNL_MEMORY_ALLOCATE`: let oneDNN allocate the buffer of a memory object.
static inline void *cdnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
/// `DNNL_MEMORY_NONE`: a memory object without a buffer (set one later).
static inline void *cdnnl_memory_none(void) { return DNNL_MEMORY_NONE; }
/// The execution argument of the `index`-th binary post-op's second operand.
static inline int cdnnl_arg_post_op_src1(int index) {
    return DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1;
}

// glibc's malloc tuning (not a oneDNN macro, but the Tensors target's one C shim).
#include <malloc.h>
/// mallopt(M_MMAP_THRESHOLD, bytes): blocks of `bytes` and more are mmap'd and unmapped when
/// freed, and the threshold stops adapting. Returns 1 on success.
static inline int cdnnl_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
