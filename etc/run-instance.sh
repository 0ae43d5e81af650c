#!/bin/sh
# make run: a working tern in ./run, for trying it out.
# Creates the instance once (domain localhost, user demo), then runs
# tern-deliver and tern-smtpd (under tcpserver) on 127.0.0.1:2525 in the
# foreground; Ctrl-C stops both.
build=${1:-build}
top=$(pwd)
port=${TERN_RUN_PORT:-2525}
conf="$top/run/etc/tern.conf"

if [ ! -f "$conf" ]; then
	"$build/ternctl" init run --domain localhost --user demo || exit 1
fi
"$build/ternctl" -C "$conf" check >/dev/null || exit 1

deliver_pid=
server_pid=
stop() {
	trap - INT TERM EXIT
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
	[ -n "$deliver_pid" ] && kill "$deliver_pid" 2>/dev/null
	wait 2>/dev/null
	echo "tern stopped."
	exit 0
}
trap stop INT TERM EXIT

"$build/tern-deliver" -C "$conf" &
deliver_pid=$!
tcpserver -H -R -l localhost -c 200 -b 1024 127.0.0.1 "$port" \
	"$build/tern-smtpd" -C "$conf" &
server_pid=$!
sleep 0.3
if ! kill -0 "$server_pid" 2>/dev/null; then
	echo "tcpserver could not listen on 127.0.0.1:$port (in use? set TERN_RUN_PORT)" >&2
	exit 1
fi

cat <<MSG

tern is running: SMTP on 127.0.0.1:$port, instance in $top/run
Send a message:
  swaks --server 127.0.0.1:$port --helo client.test --from you@example.test --to demo@localhost
It lands in:
  $top/run/mail/demo/Maildir/new/
STARTTLS is offered (a self-signed certificate); for AUTH inside it:
  $build/ternctl -C $conf passwd demo
  swaks ... --tls --auth PLAIN --auth-user demo
Look at the queue:  $build/ternctl -C $conf queue
Logs follow below.  Ctrl-C stops tern.

MSG
wait
