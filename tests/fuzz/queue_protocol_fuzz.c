/* queue_protocol_fuzz: lib/queue_protocol.c's parsers on any input.
 *
 * qq_envelope_parse either refuses the input or returns a sender and
 * recipients that lie inside it, end at a NUL inside it, hold no control
 * character, are shorter than QQ_ADDRESS_MAX and number at most
 * SPOOL_RCPTS_MAX; queue_envelope then writes exactly the input back.  A
 * socket line qs_parse_request or qs_parse_reply takes is exactly what
 * the matching formatter writes for what it parsed. */
#include <string.h>

#include "fuzz.h"
#include "queue_client.h"
#include "queue_protocol.h"
#include "spool.h"

static void check_item(const char *data, size_t size, const char *s)
{
	FUZZ_CHECK(s >= data && s < data + size);
	const char *nul = memchr(s, '\0', (size_t)(data + size - s));
	FUZZ_CHECK(nul != NULL);
	size_t len = (size_t)(nul - s);
	FUZZ_CHECK(len < QQ_ADDRESS_MAX);
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

static void fuzz_envelope(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	struct qq_envelope e;
	const char *what = NULL;

	if (copy == NULL)
		return;
	memcpy(copy, data, size);
	if (qq_envelope_parse(copy, size, &e, &what) == QQ_QUEUED) {
		FUZZ_CHECK(e.nrcpts <= SPOOL_RCPTS_MAX);
		check_item(copy, size, e.sender);
		for (size_t i = 0; i < e.nrcpts; i++)
			check_item(copy, size, e.rcpts[i]);
		size_t len;
		char *again = queue_envelope(e.sender, e.rcpts, e.nrcpts, &len);
		if (again != NULL) {
			FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
			free(again);
		}
	} else {
		FUZZ_CHECK(what != NULL);
	}
	free(e.rcpts);
	free(copy);
}

static void fuzz_lines(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	char out[QS_LINE_MAX];
	struct qs_request r;
	int code, n = -1;

	if (qs_parse_request(line, size, &r) == 0) {
		if (r.verb == QS_BEGIN)
			n = qs_format_begin(out, sizeof out, r.qid);
		else
			n = qs_format_end(out, sizeof out, r.msglen, (size_t)r.envlen);
		FUZZ_CHECK(n > 0 && (size_t)n == size + 1 && memcmp(out, line, size) == 0);
	}
	if (qs_parse_reply(line, size, &code) == 0) {
		FUZZ_CHECK(code >= 0 && code <= 255);
		n = qs_format_reply(out, sizeof out, code);
		FUZZ_CHECK(n > 0 && (size_t)n == size + 1 && memcmp(out, line, size) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_envelope(data, size);
	fuzz_lines(data, size);
	return 0;
}
