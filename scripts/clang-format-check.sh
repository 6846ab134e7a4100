#!/usr/bin/env bash
# Fails if any C/C++ file under native/, bench/ or test/native is not clang-formatted.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard -- 'native/*.cc' 'native/*.h' 'bench/*.c' 'test/native/*.cc')
[ ${#files[@]} -eq 0 ] && exit 0
clang-format --dry-run --Werror "${files[@]}"
