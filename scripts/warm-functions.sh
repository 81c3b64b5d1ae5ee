#!/usr/bin/env bash
# Calls every function once through the API at $1 (http://127.0.0.1:PORT): `cargo lambda
# watch` starts a function on its first request, which must not count against a test's or a
# fuzzer's request timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
API="$1"
token=$(make -s --no-print-directory token SUB=warm-up)
none=00000000-0000-4000-8000-000000000000
for call in "POST /sessions" "PATCH /sessions/$none" "DELETE /sessions/$none" "POST /sessions/$none/turns" \
    "GET /sessions/$none/turns" "GET /sessions/$none/context" "GET /customers/me/sessions" \
    "DELETE /customers/warm-up" "GET /receipts/$none" "GET /customers/me/memory" \
    "DELETE /customers/me/memory/00000000000000000000000000000000" "POST /sessions/$none/turns/1/retract"; do
  curl -s -o /dev/null --max-time 600 -X "${call%% *}" -H "authorization: Bearer $token" -d '{}' "$API${call#* }" || true
done
