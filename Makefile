# tern — one non-recursive Makefile.  `make` builds into build/;
# `make SANITIZE=1` builds into build/asan/ with ASan and UBSan.

PREFIX     ?= /usr/local
CONFDIR    ?= /etc/tern
SPOOLDIR   ?= /var/spool/tern
LIBEXECDIR ?= $(PREFIX)/libexec/tern
DESTDIR    ?=

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE
PATHS   := -DPREFIX='"$(PREFIX)"' -DCONFDIR='"$(CONFDIR)"' \
	   -DSPOOLDIR='"$(SPOOLDIR)"' -DLIBEXECDIR='"$(LIBEXECDIR)"'

ifeq ($(SANITIZE),1)
B       := build/asan
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	   -DTERN_SANITIZE
else
B       := build
SAN     :=
endif
# make fuzz builds here with clang and libFuzzer, whatever SANITIZE says
FB      := build/fuzz

ifeq ($(V),1)
Q :=
else
Q := @
endif

ALL_CFLAGS  = $(WARN) $(PATHS) $(SAN) $(CFLAGS) -Ilib -MMD -MP
# --as-needed: a program records only the libraries it uses (Debian's gcc
# adds it too, except under -fsanitize), so no exec pays for another's.
ALL_LDFLAGS = $(SAN) -Wl,--as-needed $(LDFLAGS)

# tern-smtpd, exec'd for every connection, links tinycdb's position-
# independent archive (libcdb-dev ships it): one shared object fewer to
# map and relocate at each start.
CDB_STATIC = -l:libcdb_pic.a
# AUTH's base64 too, from libresolv's archive (two small functions):
# NEEDED stays libc only.  crypt(3) is libcrypt.so.1, loaded with dlopen at
# the first password check (smtpd/auth.c): its archive would add 200 KB of
# text that the kernel maps around every plaintext session's page faults.
AUTH_STATIC = -l:libresolv.a

GNUTLS_CFLAGS = $(shell pkg-config --cflags gnutls 2>/dev/null)
GNUTLS_LIBS   = $(shell pkg-config --libs gnutls 2>/dev/null || echo -lgnutls)
CHECK_CFLAGS  = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS    = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
LIBTERN := $(B)/libtern.a

PROGRAMS := tern-smtpd tern-queue tern-deliver tern-local ternctl
SMTPD_OBJ   := $(patsubst %.c,$(B)/%.o,$(wildcard smtpd/*.c))
QUEUE_OBJ   := $(patsubst %.c,$(B)/%.o,$(wildcard queue/*.c))
DELIVER_OBJ := $(addprefix $(B)/deliver/,main.o store.o intake.o outcome.o reports.o route.o \
		 dispatch.o local_agent.o spawner.o requests.o cleanup.o trigger.o tables.o \
		 schedule.o queue_service.o)
LOCAL_OBJ   := $(B)/deliver/local.o
CTL_OBJ     := $(patsubst %.c,$(B)/%.o,$(wildcard tools/ternctl*.c))
# tern-smtpd's TLS module: the one part of it that links GnuTLS, loaded
# with dlopen only by a session that asks for TLS (smtpd/tls_module.h).
TLS_MODULE  := $(B)/tern-smtpd-tls.so
TLS_OBJ     := $(B)/smtpd/tls/module.o

BENCH_TOOLS := $(B)/bench/spool_fill $(B)/bench/first_reply
BENCH_OBJ   := $(patsubst %.c,$(B)/%.o,$(wildcard tests/bench/*.c))

UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/%.o)

.PHONY: all check run deps deps-build deps-run deps-test deps-fuzz install bench asan clean \
	FORCE fuzz fuzz-build fuzz-ci
all: $(addprefix $(B)/,$(PROGRAMS)) $(TLS_MODULE)

# The compiled-in paths, rewritten only when they change: every object
# depends on it, so `make PREFIX=/x install` after `make` rebuilds them.
PATHS_TEXT := PREFIX=$(PREFIX) CONFDIR=$(CONFDIR) SPOOLDIR=$(SPOOLDIR) LIBEXECDIR=$(LIBEXECDIR)
$(B)/paths.stamp $(FB)/paths.stamp: FORCE
	@mkdir -p $(dir $@)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(PATHS_TEXT)' ]; then \
		echo '$(PATHS_TEXT)' > $@; fi

$(B)/%.o: %.c $(B)/paths.stamp
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/tests/unit/%.o: tests/unit/%.c $(B)/paths.stamp
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Itools -c -o $@ $<

$(B)/tools/%.o: tools/%.c $(B)/paths.stamp
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(GNUTLS_CFLAGS) -c -o $@ $<

$(B)/smtpd/tls/%.o: smtpd/tls/%.c $(B)/paths.stamp
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Ismtpd -fPIC $(GNUTLS_CFLAGS) -c -o $@ $<

$(LIBTERN): $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(B)/tern-smtpd: $(SMTPD_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CDB_STATIC) $(AUTH_STATIC)
$(TLS_MODULE): $(TLS_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ $(GNUTLS_LIBS)
$(B)/tern-queue: $(QUEUE_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^
$(B)/tern-deliver: $(DELIVER_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb
$(B)/tern-local: $(LOCAL_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^
$(B)/ternctl: $(CTL_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb $(GNUTLS_LIBS) -lcrypt

$(B)/bench/spool_fill: $(B)/tests/bench/spool_fill.o $(LIBTERN)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^
$(B)/bench/first_reply: $(B)/tests/bench/first_reply.o
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

# ternctl's users-file editing is plain text work: tested as a unit too
UNIT_TOOLS_OBJ := $(B)/tools/ternctl_users.o
$(B)/unit-tests: $(UNIT_OBJ) $(UNIT_TOOLS_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb -lcrypt -lresolv $(CHECK_LIBS)

$(B)/fault-shim.so: tests/integration/fault_shim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -shared -fPIC -o $@ $< -ldl

# ---- fuzzing: libFuzzer harnesses, built with clang into build/fuzz/ ----
# Every tests/fuzz/NAME_fuzz.c is a harness; its seeds and kept crashers are
# tests/fuzz/corpus/NAME/, its working corpus build/fuzz/NAME/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CI_RUNS ?= 20000
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(WARN) $(PATHS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -O1 -g \
		-Ilib -Ismtpd -MMD -MP
FUZZ_NAMES   := $(patsubst tests/fuzz/%_fuzz.c,%,$(wildcard tests/fuzz/*_fuzz.c))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FB)/%_fuzz)
FUZZ_LIB_OBJ := $(patsubst %.c,$(FB)/obj/%.o,$(LIB_SRC) smtpd/command.c smtpd/data.c)
FUZZ_OBJ     := $(FUZZ_NAMES:%=$(FB)/obj/tests/fuzz/%_fuzz.o)

$(FB)/obj/%.o: %.c $(FB)/paths.stamp
	@mkdir -p $(dir $@)
	@echo "  FUZZCC  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FB)/libtern-fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(FB)/%_fuzz: $(FB)/obj/tests/fuzz/%_fuzz.o $(FB)/libtern-fuzz.a
	@echo "  LD      $@"
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -lcdb

.SECONDARY: $(FUZZ_OBJ)
fuzz-build: $(FUZZ_BIN)

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@sh tests/fuzz/run.sh explore $(FB) $(FUZZ_SECONDS) $(FUZZ_NAMES)

fuzz-ci: deps-fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@sh tests/fuzz/run.sh ci $(FB) $(FUZZ_CI_RUNS) $(FUZZ_NAMES)

-include $(LIB_OBJ:.o=.d) $(SMTPD_OBJ:.o=.d) $(QUEUE_OBJ:.o=.d) $(DELIVER_OBJ:.o=.d) \
	 $(LOCAL_OBJ:.o=.d) $(CTL_OBJ:.o=.d) $(TLS_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) \
	 $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d)

# ---- dependencies: Debian packages, installed when missing ----
BUILD_PKGS := gcc make pkg-config libgnutls28-dev libcdb-dev libcrypt-dev
RUN_PKGS   := ucspi-tcp swaks libnet-ssleay-perl libauthen-sasl-perl
TEST_PKGS  := check ucspi-tcp swaks libnet-ssleay-perl libauthen-sasl-perl curl \
	      python3-aiosmtpd dnsmasq-base gnutls-bin groff-base strace
# make bench also installs postfix itself (preseeded first, see tests/bench/run.sh);
# eatmydata lets it write a 100,000-message spool without 200,000 fsyncs.
BENCH_PKGS := eatmydata
FUZZ_PKGS  := clang libclang-rt-14-dev libcdb-dev

deps-build:
	@sh tests/deps.sh $(BUILD_PKGS)
deps-run:
	@sh tests/deps.sh $(BUILD_PKGS) $(RUN_PKGS)
deps-test:
	@sh tests/deps.sh $(BUILD_PKGS) $(TEST_PKGS)
deps-fuzz:
	@sh tests/deps.sh $(FUZZ_PKGS)
deps: deps-test

# ---- the newcomer path ----
run: deps-run
	@$(MAKE) --no-print-directory all
	@sh etc/run-instance.sh $(B)

check: deps-test
	@$(MAKE) --no-print-directory all $(B)/unit-tests $(B)/fault-shim.so
	@sh tests/check.sh $(B)

asan:
	@$(MAKE) --no-print-directory SANITIZE=1 check

bench: deps-test
	@sh tests/deps.sh $(BENCH_PKGS)
	@$(MAKE) --no-print-directory all $(BENCH_TOOLS)
	@sh tests/bench/run.sh $(B)

install: all
	sh etc/install.sh "$(B)" "$(DESTDIR)" "$(PREFIX)" "$(LIBEXECDIR)" "$(CONFDIR)" "$(SPOOLDIR)"

clean:
	rm -rf build
