#!/bin/sh
# SPARK_LOCAL_HOSTNAME=consumer (docker-compose.yml) lets the cluster's executors reach the
# driver by its service name. A one-off container (`docker compose run consumer python
# my_script.py`) does not answer to that name: Spark would fail to start on it
# (UnresolvedAddressException), or try to bind the service container's address. Keep the
# name only when it resolves to this container; otherwise Spark uses the container's own.
set -eu
if [ -n "${SPARK_LOCAL_HOSTNAME:-}" ]; then
  named=$(getent hosts "$SPARK_LOCAL_HOSTNAME" || true)
  own=$(getent hosts "$(cat /proc/sys/kernel/hostname)" || true)
  if [ -z "$named" ] || [ "${named%% *}" != "${own%% *}" ]; then
    unset SPARK_LOCAL_HOSTNAME
  fi
fi
exec "$@"
