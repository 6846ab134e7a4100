#!/usr/bin/env bash
# Builds the C++ tests of native/core three ways, each in its own folder, and
# runs ctest on each: plain, ASan+UBSan, TSan. A sanitizer report fails the
# case it happens in (the runtimes halt on the first one), and the logs of
# passing cases are searched for reports too.
#
#   scripts/test-native.sh              all three
#   scripts/test-native.sh asan tsan    some of: plain asan tsan
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(plain asan tsan)

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:report_signal_unsafe=1

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
summary=()
for v in "${variants[@]}"; do
  case $v in
    plain) sanitize="" ;;
    asan) sanitize="address,undefined" ;;
    tsan) sanitize="thread" ;;
    *) echo "unknown variant $v (plain, asan, tsan)" >&2; exit 2 ;;
  esac
  dir=build-native-$v
  echo "== $v${sanitize:+ (-fsanitize=$sanitize)} in $dir"
  start=$EPOCHREALTIME
  cmake -S "$root" -B "$dir" "${generator[@]}" \
    -DINTERLOCK_SANITIZE="$sanitize" -DINTERLOCK_WERROR=ON >/dev/null
  cmake --build "$dir" --parallel 2
  built=$(since "$start")
  start=$EPOCHREALTIME
  ctest --test-dir "$dir" --parallel 2 --output-on-failure --timeout 60
  log=$dir/Testing/Temporary/LastTest.log
  if grep -nE 'Sanitizer|runtime error:' "$log"; then
    echo "sanitizer output in $log (above)" >&2
    exit 1
  fi
  summary+=("$v: build $built s, ctest $(since "$start") s")
done
printf '%s\n' "${summary[@]}"
