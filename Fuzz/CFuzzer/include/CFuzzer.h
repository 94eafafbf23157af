#ifndef CFUZZER_H
#define CFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (libclang_rt.fuzzer_no_main): parses the libFuzzer options in argv and
/// runs `callback` on each input; returns the process exit status.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// `LLVMFuzzerRunDriver` with main's arguments: `exit(fuzzerMain(CommandLine.argc, CommandLine.unsafeArgv, fuzz))`.
static inline int fuzzerMain(int argc, char **argv, int (*callback)(const uint8_t *data, size_t size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, callback);
}

#endif
