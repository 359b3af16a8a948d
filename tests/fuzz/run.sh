#!/usr/bin/env bash
# Run every cargo-fuzz target of the planner one after another
# (docs/testing.md#fuzzing).
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60). Seeds the corpora from the conformance
# vectors, prints the executions of each target (libFuzzer's final stats) and
# the total. A crash is minimized (`cargo fuzz tmin`) and saved under
# component/tests/fuzz-regressions/<target>/, where
# `cargo test -p zae-planner --test fuzz_regressions` replays it; the script
# then exits non-zero. `dynamo_json` (the host's DynamoDB-JSON conversion)
# builds with the `dynamo` feature, which compiles aws-sdk-dynamodb.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event_text structured_event replan config dynamo_json)
fuzz="$root/component/fuzz"
regressions="$root/component/tests/fuzz-regressions"
bash "$root/tests/fuzz/seed.sh" >/dev/null
logs="$fuzz/logs"
mkdir -p "$logs"
total=0
failed=0
summary=()
for t in "${targets[@]}"; do
  # The planner is safe Rust: no sanitizer, for speed, in its own target
  # directory. dynamo_json (aws-sdk-dynamodb) keeps the default build.
  features=(-s none --target-dir "$fuzz/target/nosan")
  [ "$t" = dynamo_json ] && features=(--features dynamo)
  case "$t" in
    event_text) max_len=262144 ;;
    *) max_len=16384 ;;
  esac
  log="$logs/$t.log"
  (cd "$root/component" && cargo +nightly fuzz run -O "${features[@]}" "$t" -- \
      -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1)
  rc=$?
  execs="$(grep -E '^stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')"
  execs="${execs:-0}"
  total=$((total + execs))
  rate="$(grep -E '^stat::average_exec_per_sec:' "$log" | tail -1 | awk '{print $2}')"
  line="$(printf '%-17s %12s execs  %8s exec/s' "$t" "$execs" "${rate:-?}")"
  if [ $rc -ne 0 ]; then
    failed=1
    artifact="$(ls -t "$fuzz/artifacts/$t"/crash-* "$fuzz/artifacts/$t"/timeout-* "$fuzz/artifacts/$t"/oom-* 2>/dev/null | head -1)"
    if [ -n "$artifact" ]; then
      (cd "$root/component" && cargo +nightly fuzz tmin -O "${features[@]}" "$t" "$artifact" -- -runs=20000 \
          >"$logs/$t.tmin.log" 2>&1)
      minimized="$(ls -t "$fuzz/artifacts/$t"/minimized-from-* 2>/dev/null | head -1)"
      keep="${minimized:-$artifact}"
      mkdir -p "$regressions/$t"
      cp "$keep" "$regressions/$t/$(basename "$artifact")"
      line="$line  CRASH -> component/tests/fuzz-regressions/$t/$(basename "$artifact")"
      grep -m1 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" -A2 "$log" | sed 's/^/    /'
    else
      line="$line  FAILED (see $log)"
    fi
  fi
  echo "$line"
  summary+=("$line")
done
echo "----"
printf '%s\n' "${summary[@]}"
echo "total: $total executions"
exit $failed
