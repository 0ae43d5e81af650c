#!/bin/sh
# make install: programs, man pages, sample files; as root also the three
# system users (unless NO_USERS=1), the set-uid tern-queue and the spool's
# top folder, owned by tern-queue.
# Usage: install.sh BUILD DESTDIR PREFIX LIBEXECDIR CONFDIR SPOOLDIR
set -eu
build=$1 dest=$2 prefix=$3 libexec=$4 confdir=$5 spooldir=$6

install -d "$dest$prefix/sbin" "$dest$prefix/bin" "$dest$libexec" \
	"$dest$prefix/share/man/man5" "$dest$prefix/share/man/man8" \
	"$dest$prefix/share/doc/tern/examples"
for p in tern-smtpd tern-queue tern-deliver ternctl; do
	install -m 755 "$build/$p" "$dest$prefix/sbin/$p"
done
install -m 755 "$build/tern-local" "$dest$libexec/tern-local"
install -m 755 "$build/tern-smtpd-tls.so" "$dest$libexec/tern-smtpd-tls.so"
for f in man/*.5; do [ -f "$f" ] && install -m 644 "$f" "$dest$prefix/share/man/man5/"; done
for f in man/*.8; do [ -f "$f" ] && install -m 644 "$f" "$dest$prefix/share/man/man8/"; done
for f in etc/tern-smtpd.socket etc/tern-smtpd@.service etc/tern-deliver.service \
	 etc/tern.conf.sample etc/tcpserver/run; do
	[ -f "$f" ] && install -m 644 "$f" "$dest$prefix/share/doc/tern/examples/"
done

[ "$(id -u)" = 0 ] || exit 0
if [ "${NO_USERS:-0}" != 1 ]; then
	for u in tern-smtpd tern-queue tern-remote; do
		id "$u" >/dev/null 2>&1 ||
			useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin "$u"
	done
fi
if id tern-queue >/dev/null 2>&1; then
	chown tern-queue "$dest$prefix/sbin/tern-queue"
	chmod 4711 "$dest$prefix/sbin/tern-queue"
	# the spool belongs to tern-queue; tern-deliver makes what is inside
	# (0700 folders, the trigger) as tern-queue at its start.  0711: a
	# later socket lives under it.
	install -d -o tern-queue -g tern-queue -m 711 "$dest$spooldir"
fi
install -d -m 755 "$dest$confdir"
