/* fuzz_kernel.c -- libFuzzer target for the Windows kernel triage-dump reader (seed: the first 128 KiB of triage_x64.dmp): every input goes through ana_load, as uploads do. */
#include "tests/fuzz/fuzz_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_load(data, size); }
