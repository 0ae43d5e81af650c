#!/bin/sh
# make bench: tern and Postfix side by side, accepted and delivered messages
# per second, driven by Postfix's smtp-source on loopback, one message per
# connection, both servers' spools and Maildirs on one journaled ext4 file
# system made on a loop device (as root). Not root: tern alone, root fs.
# Then execs and fsyncs per message (strace -c) and tern-smtpd's PSS.
# Usage: tests/bench/run.sh BUILD_DIR
# BENCH_MESSAGES: messages per 1 KiB run (100 KiB runs send a quarter); the
# default keeps a plain make bench to about 5 minutes on 2 cores.
set -eu
build=$(cd "${1:-build}" && pwd)

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
	wait 2>/dev/null || true
	[ -n "$postfix_conf" ] && postfix -c "$postfix_conf" stop >/dev/null 2>&1 || true
	[ -n "$user_made" ] && userdel "$bench_user" 2>/dev/null || true
	if [ -n "$mounted" ]; then
		umount "$fs" 2>/dev/null || umount -l "$fs" 2>/dev/null || true
	fi
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null || true
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

# tern_start NAME: an instance on the bench file system, its smtpd on $port.
tern_start() {
	inst=$fs/$1
	"$build/ternctl" init "$inst" --domain bench.test --user sink >/dev/null
	conf=$inst/etc/tern.conf
	port=$(free_port)
	${trace_deliver:-} "$build/tern-deliver" -C "$conf" 2>"$inst/deliver.log" &
	deliver=$!
	${trace_smtpd:-} tcpserver -H -R -l localhost -c 200 -b 1024 127.0.0.1 "$port" \
		"$build/tern-smtpd" -C "$conf" 2>"$inst/smtpd.log" &
	server=$!
	wait_port "$port"
	tern_new=$inst/mail/sink/Maildir/new
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

if [ "$(id -u)" = 0 ]; then
	make_loop_fs
	postfix_setup
	postfix_start
	echo "tern vs Postfix $(postconf -d -h mail_version), journaled ext4 on $loop," \
		"smtp-source, one message per connection, $messages messages" \
		"(a quarter at 100 KiB), medians of $runs interleaved runs"
	printf '%-8s %-8s %9s %9s %9s %9s %7s %7s\n' clients size \
		pfx-acc pfx-del tern-acc tern-del r-acc r-del
	for size in 1024 102400; do
		for clients in 1 20 100; do
			compare "$clients" "$size"
		done
	done
	compare 20 1024 10
	syscalls_per_message
	postfix_stop
else
	echo "the comparison with Postfix needs root (a loop file system, a Postfix" \
		"instance, a bench user); tern alone on the root file system:"
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
	syscalls_per_message
fi

# Memory: the PSS of one tern-smtpd holding an idle session.
inst="$work/mem"
"$build/ternctl" init "$inst" --domain bench.test --user sink >/dev/null
port=$(free_port)
tcpserver -H -R -l localhost -c 10 -b 10 127.0.0.1 "$port" \
	"$build/tern-smtpd" -C "$inst/etc/tern.conf" 2>/dev/null &
server=$!
wait_port "$port"
/usr/bin/python3 - "$port" <<'PY'
import re, smtplib, subprocess, sys, time
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="client.test")
s.ehlo()
s.mail("a@client.test")
time.sleep(0.2)
pids = subprocess.run(["pgrep", "-x", "tern-smtpd"], capture_output=True, text=True).stdout.split()
for pid in pids:
    try:
        text = open("/proc/%s/smaps_rollup" % pid).read()
    except OSError:
        continue
    pss = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    rss = re.search(r"^Rss:\s+(\d+) kB", text, re.M)
    print("tern-smtpd memory: PSS %s kB, RSS %s kB (pid %s)" % (pss.group(1), rss.group(1), pid))
    break
s.quit()
PY
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
server=
