#!/bin/sh
# make bench: tern and Postfix side by side, accepted and delivered messages
# per second, driven by Postfix's smtp-source on loopback, one message per
# connection, both servers' spools and Maildirs on one journaled ext4 file
# system made on a loop device (as root). Not root: tern alone, root fs.
# Then the extra measures, each with its unit: execs and fsyncs per message
# (strace -c); PSS of the SMTP-side processes under load; the time to the
# 220 greeting; tern-deliver's memory and start-up with a large deferred
# backlog; the time to deliver a queue built while delivery was stopped;
# tern-smtpd's PSS holding an idle session; with BENCH_PROFILE=1, a
# system-wide perf profile of a 20-client tern run.
# Usage: tests/bench/run.sh BUILD_DIR
# BENCH_MESSAGES: messages per 1 KiB run (100 KiB runs send a quarter); the
# default keeps a plain make bench within 15 minutes on 2 cores (14 measured
# with other work beside it).
# BENCH_BACKLOG: deferred messages for tern-deliver's memory (100000);
# BENCH_BACKLOG_WAIT: seconds it may take to start with them (120).
# BENCH_STOPPED: messages queued while delivery is stopped (10000).
# BENCH_TABLE=no: skip the table of rates, only the extra measures.
# BENCH_PROFILE=1: also the perf profile (installs linux-perf as root).
set -eu
build=$(cd "${1:-build}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v smtp-source >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-source ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "make bench needs Postfix's smtp-source: as root run" >&2
		echo "  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections" >&2
		echo "  apt-get install -y postfix" >&2
		exit 1
	fi
	# Preseeded so that the package does not configure a listening Postfix.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
PATH=/usr/sbin:$PATH

messages=${BENCH_MESSAGES:-2000}
backlog=${BENCH_BACKLOG:-100000}
backlog_wait=${BENCH_BACKLOG_WAIT:-120}
stopped=${BENCH_STOPPED:-10000}
runs=3
bench_user=ternbench
work=$(mktemp -d /tmp/tern-bench.XXXXXX)
chmod 755 "$work"
fs=$work
loop=
mounted=
postfix_conf=
user_made=

cleanup() {
	[ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
	[ -n "${deliver:-}" ] && kill "$deliver" 2>/dev/null || true
	[ -n "${tracer:-}" ] && kill "$tracer" 2>/dev/null || true
	[ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null || true
	[ -n "${profiler:-}" ] && kill -INT "$profiler" 2>/dev/null || true
	wait 2>/dev/null || true
	[ -n "$postfix_conf" ] && postfix -c "$postfix_conf" stop >/dev/null 2>&1 || true
	[ -n "$user_made" ] && userdel "$bench_user" 2>/dev/null || true
	if [ -n "$mounted" ]; then
		umount "$fs" 2>/dev/null || umount -l "$fs" 2>/dev/null || true
	fi
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null || true
	[ -n "${immutable:-}" ] && chattr -i $immutable 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.1f", n * 1000 / (ms > 0 ? ms : 1) }'; }

count_new() { find "$1" -type f 2>/dev/null | wc -l; }

# wait_port PORT: until something accepts on 127.0.0.1:PORT, 10 s at most.
wait_port() {
	/usr/bin/python3 - "$1" <<'PY'
import socket, sys, time
deadline = time.time() + 10
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("nothing listens on 127.0.0.1:%s" % sys.argv[1])
PY
}

# wait_file PATH: until PATH is a non-empty file, 10 s at most.
wait_file() {
	deadline=$(( $(date +%s) + 10 ))
	while [ ! -s "$1" ] && [ "$(date +%s)" -lt "$deadline" ]; do
		sleep 0.02
	done
}

# wait_count DIR N: until DIR holds N files, 300 s at most.
wait_count() {
	deadline=$(( $(date +%s) + 300 ))
	while [ "$(count_new "$1")" -lt "$2" ] && [ "$(date +%s)" -lt "$deadline" ]; do
		sleep 0.02
	done
}

# drive PORT RCPT MAILDIR_NEW CLIENTS SIZE N [PER_CONNECTION]: sets acc and
# del (msg/s). PER_CONNECTION > 1: batches of CLIENTS sessions that each send
# PER_CONNECTION messages before they disconnect (smtp-source -d).
drive() {
	per=${7:-1}
	start=$(now_ms)
	if [ "$per" -gt 1 ]; then
		batch=$(( $4 * per ))
		left=$6
		while [ "$left" -gt 0 ]; do
			[ "$left" -lt "$batch" ] && batch=$left
			smtp-source -d -s "$4" -m "$batch" -l "$5" -f sender@client.test \
				-t "$2" -M client.test "127.0.0.1:$1"
			left=$(( left - batch ))
		done
	else
		smtp-source -s "$4" -m "$6" -l "$5" -f sender@client.test \
			-t "$2" -M client.test "127.0.0.1:$1"
	fi
	accepted_ms=$(( $(now_ms) - start ))
	wait_count "$3" "$6"
	delivered_ms=$(( $(now_ms) - start ))
	got=$(count_new "$3")
	[ "$got" -eq "$6" ] || echo "  only $got of $6 delivered in $3" >&2
	acc=$(rate "$6" "$accepted_ms")
	del=$(rate "$got" "$delivered_ms")
}

make_loop_fs() {
	truncate -s 2G "$work/img"
	loop=$(losetup -f --show "$work/img")
	mkfs.ext4 -q -N 500000 "$loop"
	fs=$work/fs
	mkdir "$fs"
	mount "$loop" "$fs"
	mounted=1
	chmod 755 "$fs"
}

# tern_start NAME [no-deliver]: an instance on the bench file system, its
# smtpd on $port, and its tern-deliver unless told not to.
tern_start() {
	inst=$fs/$1
	"$build/ternctl" init "$inst" --domain bench.test --user sink >/dev/null
	conf=$inst/etc/tern.conf
	port=$(free_port)
	[ "${2:-}" = no-deliver ] || deliver_start
	${trace_smtpd:-} tcpserver -H -R -l localhost -c 200 -b 1024 127.0.0.1 "$port" \
		"$build/tern-smtpd" -C "$conf" 2>"$inst/smtpd.log" &
	server=$!
	wait_port "$port"
	tern_new=$inst/mail/sink/Maildir/new
}

deliver_start() {
	${trace_deliver:-} "$build/tern-deliver" -C "$conf" 2>>"$inst/deliver.log" &
	deliver=$!
}

tern_stop() {
	kill "$server" "$deliver" 2>/dev/null || true
	wait "$server" "$deliver" 2>/dev/null || true
	server= deliver=
	rm -rf "$inst"
}

# tern_run CLIENTS SIZE N [PER_CONNECTION]: a fresh instance, one measured run.
tern_run() {
	tern_start "tern-$1-$2"
	drive "$port" sink@bench.test "$tern_new" "$1" "$2" "$3" "${4:-1}"
	tern_stop
}

# postfix_setup: Postfix's own config and queue directory on the bench file
# system, smtpd on a loopback port only, local(8) into a bench user's Maildir.
postfix_setup() {
	postfix_conf=$fs/postfix-etc
	mkdir -p "$postfix_conf" "$fs/postfix-queue" "$fs/postfix-data"
	chown postfix "$fs/postfix-data"
	postfix_port=$(free_port)
	bench_home=$fs/bench-home
	if getent passwd "$bench_user" >/dev/null; then
		echo "user $bench_user exists already; remove it first" >&2
		exit 1
	fi
	useradd -M -d "$bench_home" -s /usr/sbin/nologin "$bench_user"
	user_made=1
	mkdir "$bench_home"
	chown "$bench_user" "$bench_home"
	cat >"$postfix_conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $fs/postfix-queue
data_directory = $fs/postfix-data
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = bench.test
mydomain = bench.test
myorigin = bench.test
mydestination = bench.test
mynetworks = 127.0.0.0/8
relayhost =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
maillog_file = $fs/postfix-maillog
maillog_file_prefixes = $fs
home_mailbox = Maildir/
alias_maps =
alias_database =
biff = no
default_process_limit = 200
EOF
	# Debian's services, chroot off, no smtpd on port 25, no pipe services.
	{
		printf '127.0.0.1:%s inet n - n - - smtpd\n' "$postfix_port"
		awk '/^[a-z]/ && $2 != "inet" && $8 != "pipe" {
			$5 = "n"; print }' /etc/postfix/master.cf
	} >"$postfix_conf/master.cf"
	postfix -c "$postfix_conf" check >/dev/null 2>&1 || true
	postfix -c "$postfix_conf" set-permissions >/dev/null 2>&1 || true
}

postfix_start() {
	${trace_postfix:-} postfix -c "$postfix_conf" start >"$fs/postfix-start.log" 2>&1 || { cat "$fs/postfix-start.log" "$fs/postfix-maillog" >&2; exit 1; }
	wait_port "$postfix_port"
	# Never port 25, never a non-loopback address.
	if ss -ltnp | grep master | grep -v "127.0.0.1:$postfix_port" | grep -q .; then
		echo "Postfix listens beyond 127.0.0.1:$postfix_port; stopping" >&2
		ss -ltnp | grep master >&2
		exit 1
	fi
}

postfix_stop() { postfix -c "$postfix_conf" stop >/dev/null 2>&1 || true; }

# postfix_run CLIENTS SIZE N [PER_CONNECTION]: an empty Maildir, one measured run.
postfix_run() {
	rm -rf "$bench_home/Maildir"
	drive "$postfix_port" "$bench_user@bench.test" "$bench_home/Maildir/new" \
		"$1" "$2" "$3" "${4:-1}"
}

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

# compare CLIENTS SIZE [PER_CONNECTION]: interleaved runs, one row.
compare() {
	per=${3:-1}
	n=$messages
	[ "$2" -gt 10000 ] && n=$((messages / 4))
	pa= pd= ta= td= ra= rd=
	i=0
	while [ "$i" -lt "$runs" ]; do
		postfix_run "$1" "$2" "$n" "$per"
		p_acc=$acc p_del=$del
		tern_run "$1" "$2" "$n" "$per"
		t_acc=$acc t_del=$del
		pa="$pa $p_acc" pd="$pd $p_del" ta="$ta $t_acc" td="$td $t_del"
		ra="$ra $(awk -v t="$t_acc" -v p="$p_acc" 'BEGIN { printf "%.2f", t / p }')"
		rd="$rd $(awk -v t="$t_del" -v p="$p_del" 'BEGIN { printf "%.2f", t / p }')"
		i=$((i + 1))
	done
	label=$1
	[ "$per" -gt 1 ] && label="$1x$per"
	printf '%-8s %-8s %9s %9s %9s %9s %7s %7s\n' "$label" "$2" \
		"$(median3 $pa)" "$(median3 $pd)" "$(median3 $ta)" "$(median3 $td)" \
		"$(median3 $ra)" "$(median3 $rd)"
}

# descendants PID...: the PIDs and all their descendants.
descendants() {
	for pid in "$@"; do
		echo "$pid"
		descendants $(pgrep -P "$pid" || true)
	done
}

# trace_begin PID...: strace -f -c attached to the PIDs and their descendants.
trace_begin() {
	trace_out=$work/strace.$$.$(now_ms)
	set -- $(descendants "$@")
	args=
	for pid in "$@"; do args="$args -p $pid"; done
	strace -f -c -o "$trace_out" -e trace=execve,fsync,fdatasync,sync_file_range \
		$args 2>"$trace_out.log" &
	tracer=$!
	for pid in "$@"; do
		tries=0
		while [ "$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 1)" = 0 ] &&
			[ "$tries" -lt 200 ]; do
			sleep 0.02
			tries=$((tries + 1))
		done
	done
}

# trace_end N: stops the tracer, sets per_message to its execs and fsyncs.
trace_end() {
	kill -TERM "$tracer" 2>/dev/null || true
	wait "$tracer" 2>/dev/null || true
	tracer=
	per_message=$(awk -v n="$1" '$NF == "execve" { e += $4 }
		$NF == "fsync" || $NF == "fdatasync" || $NF == "sync_file_range" { f += $4 }
		END { printf "%.2f execs, %.2f fsyncs", e / n, f / n }' "$trace_out")
}

# syscalls_per_message: strace over 100 messages, 20 clients, 1 KiB, each server.
syscalls_per_message() {
	n=100
	if [ -n "$postfix_conf" ]; then
		rm -rf "$bench_home/Maildir"
		trace_begin "$(head -n 1 "$fs/postfix-queue/pid/master.pid" | tr -d ' ')"
		drive "$postfix_port" "$bench_user@bench.test" "$bench_home/Maildir/new" 20 1024 "$n"
		trace_end "$n"
		echo "Postfix per message: $per_message (strace -f -c, $n messages, 20 clients, 1 KiB)"
	fi
	tern_start tern-strace
	trace_begin "$server" "$deliver"
	drive "$port" sink@bench.test "$tern_new" 20 1024 "$n"
	trace_end "$n"
	echo "tern per message: $per_message (strace -f -c, $n messages, 20 clients, 1 KiB)"
	tern_stop
}

postfix_master() { head -n 1 "$fs/postfix-queue/pid/master.pid" | tr -d ' '; }

# memory_under_load: the PSS of each server's SMTP-side processes, read from
# /proc/PID/smaps_rollup every 0.1 s by tests/bench/procmem.py during an
# extra 20-client 1 KiB run per server (not one of the timed runs).
memory_under_load() {
	what="every 0.1 s during an extra 20-client 1 KiB run of $messages messages"
	echo "PSS under load, kB (median and max over the samples of every live process, $what):"
	if [ -n "$postfix_conf" ]; then
		rm -rf "$bench_home/Maildir"
		/usr/bin/python3 "$here/procmem.py" sample "$(postfix_master)" smtpd cleanup \
			>"$work/memory.postfix" &
		sampler=$!
		drive "$postfix_port" "$bench_user@bench.test" "$bench_home/Maildir/new" 20 1024 \
			"$messages"
		kill -TERM "$sampler"
		wait "$sampler" || true
		sampler=
		print_memory Postfix "$work/memory.postfix"
	fi
	tern_start tern-memory
	/usr/bin/python3 "$here/procmem.py" sample "$server" tern-smtpd >"$work/memory.tern" &
	sampler=$!
	drive "$port" sink@bench.test "$tern_new" 20 1024 "$messages"
	kill -TERM "$sampler"
	wait "$sampler" || true
	sampler=
	tern_stop
	print_memory tern "$work/memory.tern"
	if [ -n "$postfix_conf" ]; then
		awk 'FNR == NR { t += $2; next } { p += $2 }
			END { printf "  per connection: tern-smtpd %d kB, Postfix smtpd + cleanup %d kB\n", t, p }' \
			"$work/memory.tern" "$work/memory.postfix"
	fi
}

# print_memory SERVER FILE: FILE's lines from procmem.py sample.
print_memory() {
	while read -r name pss max rss samples procs; do
		printf '  %-8s %-10s PSS median %5d max %5d, RSS median %5d (%d samples of %d processes)\n' \
			"$1" "$name" "$pss" "$max" "$rss" "$samples" "$procs"
	done <"$2"
}

# greeting_times: the time to the 220 greeting (tests/bench/first_reply.c),
# 500 sessions one after another, QUIT after each.
greeting_times() {
	count=500
	tern_start tern-greeting no-deliver
	exec_ms=$(TCPREMOTEIP=127.0.0.1 TCPREMOTEPORT=1025 TCPLOCALIP=127.0.0.1 TCPLOCALPORT=25 \
		"$build/bench/first_reply" exec "$count" "$build/tern-smtpd" -C "$conf" \
		2>>"$inst/smtpd.log") || exec_ms="failed"
	tern_ms=$("$build/bench/first_reply" connect "$count" "$port" 2>&1) || tern_ms="failed"
	tern_stop
	echo "time to the 220 greeting, ms (median, 10th-90th percentile of $count sessions in a row):"
	print_greeting "tern-smtpd exec to 220 (fork + exec on a socketpair, no tcpserver)" $exec_ms
	print_greeting "tern: connect to 220 on loopback (tcpserver fork + exec)" $tern_ms
	if [ -n "$postfix_conf" ]; then
		pfx_ms=$("$build/bench/first_reply" connect "$count" "$postfix_port" 2>&1) ||
			pfx_ms="failed"
		print_greeting "Postfix: connect to 220 on loopback (smtpd reused, max_use 100)" \
			$pfx_ms
	fi
}

print_greeting() {
	label=$1
	shift
	if [ "$#" = 3 ]; then
		printf '  %-70s %6s (%s-%s)\n' "$label" "$1" "$2" "$3"
	else
		printf '  %-70s %s\n' "$label" "$*"
	fi
}

# backlog_memory: tern-deliver's start-up and memory with $backlog deferred
# messages queued; if it is not idle within $backlog_wait s, the same with
# a tenth of them, so that make bench still says what a message costs.
backlog_memory() {
	backlog_run "$backlog" || backlog_run $((backlog / 10)) || true
}

# backlog_run N: tern-deliver with N messages queued, each with its one
# recipient deferred for an hour and its Maildir unwritable (mode 555, and
# immutable as root, since root ignores modes), written straight into the
# spool by tests/bench/spool_fill.c through lib/spool.h.  Start-up ends
# when the CPU time of tern-deliver's process tree has not grown for 1 s
# (procmem.py settle); memory is that tree's RSS then.  1 if not idle
# within $backlog_wait s.
backlog_run() {
	count=$1
	inst=$fs/tern-backlog
	"$build/ternctl" init "$inst" --domain bench.test --user sink >/dev/null
	conf=$inst/etc/tern.conf
	maildir=$inst/mail/sink/Maildir
	chmod 555 "$maildir/tmp" "$maildir/new" "$maildir/cur" "$maildir"
	if [ "$(id -u)" = 0 ]; then
		immutable="$maildir/tmp $maildir/new $maildir/cur"
		chattr +i $immutable
	fi
	deliver_start
	set -- $(/usr/bin/python3 "$here/procmem.py" settle "$deliver" 1 60) failed 0 0
	empty_s=$2 empty_rss=$3
	kill "$deliver"
	wait "$deliver" 2>/dev/null || true
	fill_spool "$count" || return 1
	deliver_start
	set -- $(/usr/bin/python3 "$here/procmem.py" settle "$deliver" 1 "$backlog_wait") \
		failed 0 0 0 0
	status=$1 full_s=$2 full_rss=$3 full_pss=$4 procs=$5
	# still loading, it may not look at signals until it is done
	[ "$status" = idle ] && kill "$deliver" || kill -KILL "$deliver"
	wait "$deliver" 2>/dev/null || true
	deliver=
	attempts=$(grep -c "deferred id=" "$inst/deliver.log" || true)
	[ -n "${immutable:-}" ] && chattr -i $immutable
	immutable=
	chmod 755 "$maildir" "$maildir/tmp" "$maildir/new" "$maildir/cur"
	rm -rf "$inst"
	echo "tern-deliver with $queued deferred messages queued (1 KiB, Maildir unwritable," \
		"retry in 1 h; written in $fill_s s by tests/bench/spool_fill, page cache warm):"
	if [ "$status" != idle ]; then
		echo "  start-up: not idle after $full_s s (its CPU time still growing;" \
			"RSS then $full_rss kB, $procs processes)"
		return 1
	fi
	echo "  start-up: $full_s s (empty queue: $empty_s s), from exec until its process tree's" \
		"CPU time stops growing for 1 s; $attempts delivery attempts meanwhile"
	awk -v e="$empty_rss" -v f="$full_rss" -v p="$full_pss" -v n="$queued" -v procs="$procs" 'BEGIN {
		per = (f - e) * 1024 / n
		printf "  RSS: %d kB (PSS %d kB, %d processes; empty queue: %d kB): %.0f bytes per queued message\n", f, p, procs, e, per
		printf "  so for 1,000,000 queued: about %.0f MB (the empty RSS + 1,000,000 x %.0f bytes)\n", (e * 1024 + per * 1000000) / 1048576, per
	}'
}

# fill_spool N: N messages into $inst's spool by two spool_fill processes
# (they share the journal's commits), under eatmydata when it is there
# (no fsync per file: one sync of the file system after); sets queued
# and fill_s.  1 if a spool_fill failed.
fill_spool() {
	fill_start=$(now_ms)
	nosync=
	command -v eatmydata >/dev/null 2>&1 && nosync=eatmydata
	shard=0
	fillers=
	while [ "$shard" -lt 2 ]; do
		$nosync "$build/bench/spool_fill" "$inst/spool" "$1" 1024 \
			sender@client.test sink@bench.test 3600 "$shard" 2 &
		fillers="$fillers $!"
		shard=$((shard + 1))
	done
	filled=yes
	for pid in $fillers; do wait "$pid" || filled=no; done
	if [ "$filled" != yes ]; then
		echo "tests/bench/spool_fill failed: tern-deliver's backlog not measured" >&2
		return 1
	fi
	sync -f "$inst/spool/queue"
	queued=$1
	fill_s=$(awk -v ms="$(( $(now_ms) - fill_start ))" 'BEGIN { printf "%.1f", ms / 1000 }')
}

# deliver_after_stop: STOPPED messages sent (20 clients, 1 KiB) while
# delivery is stopped, then delivery started: seconds until the Maildir
# holds them all.  tern: tern-deliver not running.  Postfix: master.cf
# without qmgr (cleanup leaves each message in incoming/) and in_flow_delay
# off (with no qmgr to hand out tokens, each message would wait 1 s), then
# both put back and `postfix reload`.
deliver_after_stop() {
	echo "delivery of $stopped messages (1 KiB) queued while delivery was stopped," \
		"from its start until the Maildir holds them all:"
	if [ -n "$postfix_conf" ]; then
		rm -rf "$bench_home/Maildir"
		cp "$postfix_conf/master.cf" "$work/master.cf"
		grep -v '^qmgr[[:space:]]' "$work/master.cf" >"$postfix_conf/master.cf"
		postconf -c "$postfix_conf" -e in_flow_delay=0s
		postfix -c "$postfix_conf" reload >/dev/null 2>&1
		queue_stopped "$postfix_port" "$bench_user@bench.test"
		cp "$work/master.cf" "$postfix_conf/master.cf"
		postconf -c "$postfix_conf" -X in_flow_delay
		early=$(count_new "$bench_home/Maildir/new")
		start=$(now_ms)
		postfix -c "$postfix_conf" reload >/dev/null 2>&1
		print_stopped Postfix "$bench_home/Maildir/new" "$early"
	fi
	tern_start tern-stopped no-deliver
	queue_stopped "$port" sink@bench.test
	early=$(count_new "$tern_new")
	start=$(now_ms)
	deliver_start
	print_stopped tern "$tern_new" "$early"
	tern_stop
}

# queue_stopped PORT RCPT: sends $stopped messages, sets queued_s.
queue_stopped() {
	queue_start=$(now_ms)
	smtp-source -s 20 -m "$stopped" -l 1024 -f sender@client.test -t "$2" -M client.test \
		"127.0.0.1:$1"
	queued_s=$(awk -v ms="$(( $(now_ms) - queue_start ))" 'BEGIN { printf "%.1f", ms / 1000 }')
}

# print_stopped SERVER MAILDIR_NEW EARLY: waits from $start for $stopped
# files; EARLY of them were there before the start (none, if delivery
# really was stopped).
print_stopped() {
	wait_count "$2" "$stopped"
	ms=$(( $(now_ms) - start ))
	got=$(count_new "$2")
	awk -v s="$1" -v n="$got" -v want="$stopped" -v ms="$ms" -v q="$queued_s" -v early="$3" 'BEGIN {
		printf "  %-8s %6.1f s, %6.1f msg/s (%d of %d delivered, %d of them before the start;" \
			" queueing them took %s s)\n",
			s, ms / 1000, n * 1000 / (ms > 0 ? ms : 1), n, want, early, q }'
}

# profile: perf record -e cpu-clock -a -g (no hardware counters here)
# during an extra 20-client 1 KiB tern run; the top of perf report.
profile() {
	if ! command -v perf >/dev/null 2>&1; then
		sh "$here/../deps.sh" linux-perf || return 0
	fi
	tern_start tern-profile
	perf record -q -e cpu-clock -a -g -o "$work/perf.data" 2>"$work/perf.log" &
	profiler=$!
	wait_file "$work/perf.data"
	drive "$port" sink@bench.test "$tern_new" 20 1024 "$messages"
	kill -INT "$profiler"
	wait "$profiler" 2>/dev/null || true
	profiler=
	tern_stop
	echo "profile (perf record -e cpu-clock -a -g, the whole machine during an extra" \
		"20-client 1 KiB tern run of $messages messages; top 30 by comm, dso):"
	perf report -i "$work/perf.data" --stdio --no-children --sort comm,dso -g none \
		2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 30
}

# idle_session_memory: the PSS of one tern-smtpd holding an idle session.
idle_session_memory() {
	inst="$work/mem"
	"$build/ternctl" init "$inst" --domain bench.test --user sink >/dev/null
	port=$(free_port)
	tcpserver -H -R -l localhost -c 10 -b 10 127.0.0.1 "$port" \
		"$build/tern-smtpd" -C "$inst/etc/tern.conf" 2>/dev/null &
	server=$!
	wait_port "$port"
	/usr/bin/python3 - "$port" "$server" <<'PY'
import re, smtplib, subprocess, sys, time
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test")
s.ehlo()
s.mail("a@client.test")
pids = subprocess.run(["pgrep", "-P", sys.argv[2], "-x", "tern-smtpd"], capture_output=True,
                      text=True).stdout.split()
for pid in pids:
    try:
        text = open("/proc/%s/smaps_rollup" % pid).read()
    except OSError:
        continue
    pss = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    rss = re.search(r"^Rss:\s+(\d+) kB", text, re.M)
    print("tern-smtpd holding an idle session (after MAIL): PSS %s kB, RSS %s kB"
          % (pss.group(1), rss.group(1)))
    break
else:
    print("tern-smtpd holding an idle session: no process found")
s.quit()
PY
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=
}

bench_start=$(now_ms)
if [ "$(id -u)" = 0 ]; then
	make_loop_fs
	postfix_setup
	postfix_start
	if [ "${BENCH_TABLE:-yes}" != no ]; then
		echo "tern vs Postfix $(postconf -d -h mail_version), journaled ext4 on $loop," \
			"smtp-source, one message per connection, $messages messages" \
			"(a quarter at 100 KiB), medians of $runs interleaved runs; rates in msg/s"
		printf '%-8s %-8s %9s %9s %9s %9s %7s %7s\n' clients size \
			pfx-acc pfx-del tern-acc tern-del r-acc r-del
		for size in 1024 102400; do
			for clients in 1 20 100; do
				compare "$clients" "$size"
			done
		done
		compare 20 1024 10
	fi
else
	echo "the comparison with Postfix needs root (a loop file system, a Postfix" \
		"instance, a bench user); tern alone on the root file system:"
	if [ "${BENCH_TABLE:-yes}" != no ]; then
		printf '%-8s %-8s %9s %9s\n' clients size tern-acc tern-del
		for size in 1024 102400; do
			for clients in 1 20 100; do
				n=$messages
				[ "$size" -gt 10000 ] && n=$((messages / 4))
				tern_run "$clients" "$size" "$n"
				printf '%-8s %-8s %9s %9s\n' "$clients" "$size" "$acc" "$del"
			done
		done
		tern_run 20 1024 "$messages" 10
		printf '%-8s %-8s %9s %9s\n' 20x10 1024 "$acc" "$del"
	fi
fi
echo
echo "extra measures:"
syscalls_per_message
memory_under_load
greeting_times
idle_session_memory
backlog_memory
deliver_after_stop
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
	if [ "$(id -u)" = 0 ]; then
		profile
	else
		echo "profile: perf record -a needs root here; skipped"
	fi
fi
[ -n "$postfix_conf" ] && postfix_stop
echo "make bench took $(( ($(now_ms) - bench_start) / 1000 )) s"
