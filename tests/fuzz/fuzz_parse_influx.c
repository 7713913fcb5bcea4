/* Fuzz target: dc_parse() on Influx line protocol payloads (fuzz_parse.h). */
#include "fuzz_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_parse_one(CFG_INPUT_INFLUX, data, size);
}
