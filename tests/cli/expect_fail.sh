#!/usr/bin/env bash
# expect_fail.sh PATTERN RUNS_DIR COMMAND...
# Passes when COMMAND exits non-zero, its stderr's first line matches PATTERN
# (an extended regex) and no run directory was left behind under RUNS_DIR.
set -u
pattern=$1 runs=$2
shift 2
rm -rf "$runs"
err=$("$@" 2>&1 >/dev/null)
code=$?
first=$(printf '%s\n' "$err" | head -n 1)
fail=0
if [ "$code" -eq 0 ]; then echo "FAIL: exit code 0, expected non-zero"; fail=1; fi
if ! printf '%s\n' "$first" | grep -Eq -- "$pattern"; then
  echo "FAIL: first error line does not match /$pattern/"; fail=1
fi
if [ -d "$runs" ] && [ -n "$(ls -A "$runs")" ]; then
  echo "FAIL: a run directory was left behind: $(ls "$runs")"; fail=1
fi
echo "exit code: $code"
echo "stderr:"
printf '%s\n' "$err"
exit $fail
