#!/usr/bin/env bash
# Print the path of pyenv's newest CPython X.Y, e.g. `bash tools/find_python.sh 3.12`,
# never a fixed path; fail, saying what to install, if pyenv has none.
set -euo pipefail
want=${1:?usage: find_python.sh X.Y}
version=$(pyenv versions --bare --skip-aliases | grep -E "^${want//./\\.}\.[0-9]+$" | sort -V | tail -1 || true)
if [ -z "$version" ]; then
  echo "find_python: pyenv has no CPython $want (pyenv install $want)" >&2
  exit 1
fi
echo "$(pyenv prefix "$version")/bin/python$want"
