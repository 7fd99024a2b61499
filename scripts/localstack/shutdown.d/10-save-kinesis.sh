#!/bin/sh
# LocalStack runs this when it stops (`docker compose stop/restart/down`), before it stops
# its services. LocalStack ends kinesis-mock, its Kinesis engine, with SIGKILL, so records
# put since kinesis-mock's last periodic save (KINESIS_MOCK_PERSIST_INTERVAL) would be lost;
# on SIGTERM kinesis-mock saves its whole state first, then exits. So: SIGTERM, then wait
# for it to exit (Compose's stop_grace_period for LocalStack leaves the time).
set -u
for cmdline in /proc/[0-9]*/cmdline; do
  if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q 'kinesis-local/.*/main\.js'; then
    pid=${cmdline#/proc/}
    pid=${pid%/cmdline}
    echo "saving Kinesis streams and records (kinesis-mock, pid $pid)"
    kill -TERM "$pid" 2>/dev/null || continue
    waited=0
    while [ -d "/proc/$pid" ] && [ "$waited" -lt 500 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if [ -d "/proc/$pid" ]; then
      echo "kinesis-mock still saving after 50 s: records since its last save may be lost" >&2
    else
      echo "saved Kinesis streams and records in $((waited / 10)) s"
    fi
  fi
done
