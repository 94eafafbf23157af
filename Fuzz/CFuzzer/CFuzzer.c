// Declarations only (include/CFuzzer.h); the code is libFuzzer's, linked by scripts/fuzz.
#include "CFuzzer.h"
