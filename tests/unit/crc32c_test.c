/* crc32c: the standard check values, pieces, and both code paths agree. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "suites.h"

typedef uint32_t (*crc_function)(uint32_t, const void *, size_t);

static const crc_function both[] = { crc32c_update, crc32c_update_portable };

START_TEST(check_value)
{
	crc_function f = both[_i];

	ck_assert_uint_eq(f(0, "123456789", 9), 0xE3069283u);
	ck_assert_uint_eq(f(0, "", 0), 0);
	ck_assert_uint_eq(f(0x12345678u, "", 0), 0x12345678u);
	ck_assert_uint_eq(f(0, "a", 1), 0xC1D04330u);
}
END_TEST

/* RFC 3720, appendix B.4: 32 octets each. */
START_TEST(iscsi_vectors)
{
	crc_function f = both[_i];
	unsigned char buf[32];

	memset(buf, 0, sizeof buf);
	ck_assert_uint_eq(f(0, buf, sizeof buf), 0x8A9136AAu);
	memset(buf, 0xff, sizeof buf);
	ck_assert_uint_eq(f(0, buf, sizeof buf), 0x62A8AB43u);
	for (unsigned i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	ck_assert_uint_eq(f(0, buf, sizeof buf), 0x46DD794Eu);
	for (unsigned i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	ck_assert_uint_eq(f(0, buf, sizeof buf), 0x113FDB5Cu);
}
END_TEST

/* Every split of a buffer, at every alignment, gives the one-shot value,
 * and the fast path agrees with the table. */
START_TEST(pieces_and_alignment_agree)
{
	enum { LEN = 300 };
	unsigned char *buf = malloc(LEN + 8);
	uint32_t seed = 0x9E3779B9u;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < LEN + 8; i++) {
		seed = seed * 1664525u + 1013904223u;
		buf[i] = (unsigned char)(seed >> 24);
	}
	for (size_t shift = 0; shift < 8; shift++) {
		const unsigned char *p = buf + shift;
		uint32_t whole = crc32c_update_portable(0, p, LEN);
		ck_assert_uint_eq(crc32c_update(0, p, LEN), whole);
		for (size_t cut = 0; cut <= LEN; cut += 7) {
			uint32_t a = crc32c_update(0, p, cut);
			ck_assert_uint_eq(crc32c_update(a, p + cut, LEN - cut), whole);
		}
	}
	free(buf);
}
END_TEST

/* A change of one bit anywhere changes the value: a flipped or zeroed
 * octet is never missed. */
START_TEST(one_bit_changes_it)
{
	unsigned char buf[64];

	memset(buf, 'x', sizeof buf);
	uint32_t clean = crc32c_update(0, buf, sizeof buf);
	for (size_t i = 0; i < sizeof buf; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			buf[i] ^= (unsigned char)(1u << bit);
			ck_assert_uint_ne(crc32c_update(0, buf, sizeof buf), clean);
			buf[i] ^= (unsigned char)(1u << bit);
		}
	}
}
END_TEST

Suite *crc32c_suite(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc = tcase_create("values");

	tcase_add_loop_test(tc, check_value, 0, 2);
	tcase_add_loop_test(tc, iscsi_vectors, 0, 2);
	tcase_add_test(tc, pieces_and_alignment_agree);
	tcase_add_test(tc, one_bit_changes_it);
	suite_add_tcase(s, tc);
	return s;
}
