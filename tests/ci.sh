#!/bin/sh
# One command for a fresh Debian 12 machine: install dependencies, build, and
# run the whole test suite as an ordinary user. The last line of output is
# "N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
tests/deps.sh
tests/build.sh
exec tests/run "$(pwd)"
