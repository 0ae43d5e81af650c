#!/bin/sh
# make bench: accepted and delivered messages per second, and the memory of
# one tern-smtpd, driven by Postfix's smtp-source on loopback.
# Usage: tests/bench/run.sh BUILD_DIR
set -eu
build=$(cd "${1:-build}" && pwd)
top=$(pwd)

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
work=$(mktemp -d /tmp/tern-bench.XXXXXX)
chmod 755 "$work"
cleanup() {
	[ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
	[ -n "${deliver:-}" ] && kill "$deliver" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.1f", n * 1000 / (ms > 0 ? ms : 1) }'; }

count_new() { find "$1" -type f | wc -l; }

printf '%-12s %-8s %12s %12s\n' clients size accepted/s delivered/s
for size in 1024 102400; do
	for clients in 1 20; do
		inst="$work/i-$size-$clients"
		"$build/ternctl" init "$inst" --domain bench.test --user sink >/dev/null
		conf="$inst/etc/tern.conf"
		port=$(free_port)
		"$build/tern-deliver" -C "$conf" 2>"$inst/deliver.log" &
		deliver=$!
		tcpserver -H -R -l localhost -c 200 -b 1024 127.0.0.1 "$port" \
			"$build/tern-smtpd" -C "$conf" 2>"$inst/smtpd.log" &
		server=$!
		sleep 0.3
		n=$messages
		[ "$size" -gt 10000 ] && n=$((messages / 4))
		start=$(now_ms)
		smtp-source -s "$clients" -m "$n" -l "$size" -f sender@client.test \
			-t sink@bench.test -M client.test "127.0.0.1:$port"
		accepted_ms=$(( $(now_ms) - start ))
		maildir="$inst/mail/sink/Maildir/new"
		deadline=$(( $(date +%s) + 300 ))
		while [ "$(count_new "$maildir")" -lt "$n" ] && [ "$(date +%s)" -lt "$deadline" ]; do
			sleep 0.05
		done
		delivered_ms=$(( $(now_ms) - start ))
		got=$(count_new "$maildir")
		printf '%-12s %-8s %12s %12s\n' "$clients" "$size" \
			"$(rate "$n" "$accepted_ms")" "$(rate "$got" "$delivered_ms")"
		[ "$got" -eq "$n" ] || echo "  only $got of $n delivered" >&2
		kill "$server" "$deliver" 2>/dev/null || true
		wait "$server" "$deliver" 2>/dev/null || true
		server= deliver=
	done
done

# Memory: the PSS of one tern-smtpd holding an idle session.
inst="$work/mem"
"$build/ternctl" init "$inst" --domain bench.test --user sink >/dev/null
port=$(free_port)
tcpserver -H -R -l localhost -c 10 -b 10 127.0.0.1 "$port" \
	"$build/tern-smtpd" -C "$inst/etc/tern.conf" 2>/dev/null &
server=$!
sleep 0.3
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
