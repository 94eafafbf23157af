// libgomp, the OpenMP runtime oneDNN is built against on Debian. Diffuse runs its own
// parallel kernels on the same thread team, so the two never compete for the cores.
#pragma once
/// Runs `fn(data)` on a team of `num_threads` threads (0 = the default), the calling
/// thread included; returns when all are done. This is the entry point GCC emits for
/// `#pragma omp parallel`.
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
int omp_get_max_threads(void);
int omp_in_parallel(void);
void omp_set_num_threads(int);
