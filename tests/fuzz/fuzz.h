/* fuzz: what the libFuzzer harnesses in tests/fuzz/ share.
 *
 * Each NAME_fuzz.c defines LLVMFuzzerTestOneInput; FUZZ_CHECK states an
 * invariant of the code under test and aborts (a libFuzzer crash, with the
 * input saved) when it does not hold. */
#ifndef TERN_FUZZ_H
#define TERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
	do { \
		if (!(cond)) \
			fuzz_fail(__FILE__, __LINE__, #cond); \
	} while (0)

static inline void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant does not hold: %s\n", file, line, what);
	abort();
}

#endif
