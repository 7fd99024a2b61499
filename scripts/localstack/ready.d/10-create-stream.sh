#!/bin/sh
# LocalStack runs this once it is ready; its healthcheck waits for it, so the
# producer and consumer start only when the stream exists. Idempotent: a stream
# that is already there is left as it is.
set -eu
# awslocal's default host, localhost.localstack.cloud, needs public DNS: talk to the gateway directly.
export AWS_ENDPOINT_URL=http://127.0.0.1:4566
stream="${KINESIS_STREAM_NAME:-events}"
shards="${KINESIS_SHARD_COUNT:-2}"
if awslocal kinesis describe-stream-summary --stream-name "$stream" >/dev/null 2>&1; then
  echo "stream $stream already exists"
else
  awslocal kinesis create-stream --stream-name "$stream" --shard-count "$shards"
  echo "created stream $stream with $shards shards"
fi
awslocal kinesis wait stream-exists --stream-name "$stream"
