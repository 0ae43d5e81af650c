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

ifeq ($(V),1)
Q :=
else
Q := @
endif

ALL_CFLAGS  = $(WARN) $(PATHS) $(SAN) $(CFLAGS) -Ilib -MMD -MP
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

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
DELIVER_OBJ := $(B)/deliver/deliver.o $(B)/deliver/schedule.o
LOCAL_OBJ   := $(B)/deliver/local.o
CTL_OBJ     := $(patsubst %.c,$(B)/%.o,$(wildcard tools/ternctl*.c))

UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/%.o)

.PHONY: all check run deps deps-build deps-run deps-test install bench asan clean FORCE
all: $(addprefix $(B)/,$(PROGRAMS))

# The compiled-in paths, rewritten only when they change: every object
# depends on it, so `make PREFIX=/x install` after `make` rebuilds them.
PATHS_TEXT := PREFIX=$(PREFIX) CONFDIR=$(CONFDIR) SPOOLDIR=$(SPOOLDIR) LIBEXECDIR=$(LIBEXECDIR)
$(B)/paths.stamp: FORCE
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
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(B)/tools/%.o: tools/%.c $(B)/paths.stamp
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(GNUTLS_CFLAGS) -c -o $@ $<

$(LIBTERN): $(LIB_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

$(B)/tern-smtpd: $(SMTPD_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb
$(B)/tern-queue: $(QUEUE_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb
$(B)/tern-deliver: $(DELIVER_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb
$(B)/tern-local: $(LOCAL_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb
$(B)/ternctl: $(CTL_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb $(GNUTLS_LIBS)

$(B)/unit-tests: $(UNIT_OBJ) $(LIBTERN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ -lcdb $(CHECK_LIBS)

$(B)/fault-shim.so: tests/integration/fault_shim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -shared -fPIC -o $@ $< -ldl

-include $(LIB_OBJ:.o=.d) $(SMTPD_OBJ:.o=.d) $(QUEUE_OBJ:.o=.d) $(DELIVER_OBJ:.o=.d) \
	 $(LOCAL_OBJ:.o=.d) $(CTL_OBJ:.o=.d) $(UNIT_OBJ:.o=.d)

# ---- dependencies: Debian packages, installed when missing ----
BUILD_PKGS := gcc make pkg-config libgnutls28-dev libcdb-dev libcrypt-dev
RUN_PKGS   := ucspi-tcp swaks libnet-ssleay-perl libauthen-sasl-perl
TEST_PKGS  := check ucspi-tcp swaks libnet-ssleay-perl libauthen-sasl-perl curl \
	      python3-aiosmtpd dnsmasq-base gnutls-bin groff-base strace

deps-build:
	@sh tests/deps.sh $(BUILD_PKGS)
deps-run:
	@sh tests/deps.sh $(BUILD_PKGS) $(RUN_PKGS)
deps-test:
	@sh tests/deps.sh $(BUILD_PKGS) $(TEST_PKGS)
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
	@$(MAKE) --no-print-directory all
	@sh tests/bench/run.sh $(B)

install: all
	sh etc/install.sh "$(B)" "$(DESTDIR)" "$(PREFIX)" "$(LIBEXECDIR)" "$(CONFDIR)" "$(SPOOLDIR)"

clean:
	rm -rf build
