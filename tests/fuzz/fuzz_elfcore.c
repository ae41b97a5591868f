/* fuzz_elfcore.c -- libFuzzer target for the ELF core reader (seeds: decompressed crashlab cores cut to their first 128 KiB): every input goes through ana_load, as uploads do. */
#include "tests/fuzz/fuzz_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_load(data, size); }
