/* The unit tests: every suite in suites.h, one summary line at the end. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"
#include "suites.h"

int main(void)
{
	if (test_root_create() < 0) {
		perror("unit: cannot make a scratch folder");
		return 2;
	}
	SRunner *sr = srunner_create(addr_suite());
	srunner_add_suite(sr, command_suite());
	srunner_add_suite(sr, data_suite());
	srunner_add_suite(sr, conf_suite());
	srunner_add_suite(sr, table_suite());
	srunner_add_suite(sr, spool_suite());
	srunner_add_suite(sr, recipient_suite());
	srunner_add_suite(sr, dsn_suite());
	srunner_add_suite(sr, log_suite());
	srunner_add_suite(sr, queue_client_suite());
	srunner_add_suite(sr, crc32c_suite());
	srunner_add_suite(sr, spool_v2_suite());
	srunner_add_suite(sr, queue_protocol_suite());
	srunner_add_suite(sr, heap_suite());
	srunner_add_suite(sr, local_protocol_suite());
	srunner_add_suite(sr, syncs_suite());
	srunner_add_suite(sr, users_suite());
	srunner_add_suite(sr, auth_suite());
	/* fork mode unless CK_FORK=no (handy under a debugger) */
	srunner_run_all(sr, CK_NORMAL);
	int run = srunner_ntests_run(sr);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	test_root_remove();
	printf("unit: %d passed, %d failed, 0 skipped\n", run - failed, failed);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
