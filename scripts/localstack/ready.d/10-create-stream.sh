#!/bin/sh
# LocalStack runs this once it is ready; its healthcheck waits for it, so the
# producer starts only when the stream exists (the consumer waits for it itself).
# Idempotent: a stream that is already there is left as it is.
#
# Kinesis's JSON API through the gateway, with curl: each `awslocal` call starts a
# whole AWS CLI, seconds on a busy machine, on the path of every cold start. LocalStack
# reads the region and account from the (unchecked) signature's credential scope.
#
# The stream, its shards and the region are what docker-compose.yml passes (whose defaults
# the settings classes own): no copies here, and the hook fails naming what is missing.
set -eu
stream="${KINESIS_STREAM_NAME:?set by docker-compose.yml}"
shards="${KINESIS_SHARD_COUNT:?set by docker-compose.yml}"
region="${AWS_DEFAULT_REGION:?set by docker-compose.yml}"
body=$(mktemp)

kinesis() { # ACTION JSON: prints the HTTP status (000: no answer); the answer goes to $body
  curl -sS --max-time 20 -o "$body" -w '%{http_code}' -X POST http://127.0.0.1:4566/ \
    -H "Content-Type: application/x-amz-json-1.1" \
    -H "X-Amz-Target: Kinesis_20131202.$1" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/$region/kinesis/aws4_request, SignedHeaders=host, Signature=0" \
    -d "$2" || true
}

# Within 60 s, or the hook fails (and LocalStack's healthcheck with it). The first call
# starts the Kinesis engine: on a busy machine it may answer 5xx, or not at all, at first.
tries=0
give_up_after() { # WHAT: counts a try; fails the hook after 120 of them (0.5 s apart)
  tries=$((tries + 1))
  if [ "$tries" -ge 120 ]; then
    echo "$1 after 60 s: HTTP $status $(cat "$body")" >&2
    exit 1
  fi
  sleep 0.5
}

while :; do
  status=$(kinesis CreateStream "{\"StreamName\":\"$stream\",\"ShardCount\":$shards}")
  if [ "$status" = 200 ]; then
    echo "created stream $stream with $shards shards"
    break
  elif grep -q ResourceInUseException "$body" 2>/dev/null; then
    echo "stream $stream already exists"
    break
  fi
  case "$status" in
    000 | 5*) give_up_after "cannot create stream $stream" ;;
    *)
      echo "cannot create stream $stream: HTTP $status $(cat "$body")" >&2
      exit 1
      ;;
  esac
done
until status=$(kinesis DescribeStreamSummary "{\"StreamName\":\"$stream\"}") \
  && [ "$status" = 200 ] && grep -q '"StreamStatus": *"ACTIVE"' "$body"; do
  give_up_after "stream $stream not ACTIVE"
done
echo "stream $stream is ACTIVE"
rm -f "$body"
