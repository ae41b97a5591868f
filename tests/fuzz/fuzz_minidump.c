/* fuzz_minidump.c -- libFuzzer target for the MDMP reader (seeds: Breakpad's testdata dumps and triage-fixgen samples): every input goes through ana_load, as uploads do. */
#include "tests/fuzz/fuzz_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_load(data, size); }
