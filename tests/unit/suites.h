/* suites: one function per test file, each building its check Suite. */
#ifndef TERN_UNIT_SUITES_H
#define TERN_UNIT_SUITES_H

#include <check.h>

Suite *addr_suite(void);
Suite *command_suite(void);
Suite *data_suite(void);
Suite *conf_suite(void);
Suite *table_suite(void);
Suite *spool_suite(void);
Suite *recipient_suite(void);
Suite *dsn_suite(void);
Suite *log_suite(void);
Suite *queue_client_suite(void);
Suite *crc32c_suite(void);
Suite *spool_v2_suite(void);
Suite *queue_protocol_suite(void);
Suite *heap_suite(void);
Suite *local_protocol_suite(void);
Suite *syncs_suite(void);
Suite *users_suite(void);
Suite *auth_suite(void);

#endif
