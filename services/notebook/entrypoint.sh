#!/bin/sh
# An empty JUPYTER_TOKEN would switch Jupyter's authentication off: drop it, so Jupyter makes up
# a token and prints the URL with it (`docker compose logs notebook`).
set -eu
if [ -z "${JUPYTER_TOKEN:-}" ]; then
  unset JUPYTER_TOKEN
fi
exec "$@"
