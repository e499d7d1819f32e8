#!/bin/sh
# Build husk in the source tree (idempotent): autogen, configure, make, and
# the unit-test and probe binaries (make check builds and runs the unit tests).
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || ./autogen.sh >/dev/null
[ -f Makefile ] || ./configure -q --enable-werror
make -s -j"$(nproc)"
make -s -j"$(nproc)" check >/dev/null || { cat test-suite.log 2>/dev/null; exit 1; }
