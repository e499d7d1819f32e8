#!/bin/bash
# build.sh OUTDIR [HUSK] -- the Debian 12 image for the MPI tests and the
# benchmarks, as an ordinary user, from images/debian/recipe:
#
#   OUTDIR/debian.sqfs   `husk build images/debian/recipe` (lz4)
#   OUTDIR/debian/       the same tree as a directory (unsquashfs), for the
#                        benchmark's native and directory-image columns
#
# HUSK defaults to bin/husk of this checkout. FROM debian:bookworm needs
# mmdebstrap, uidmap and subordinate ids for the user; one-time host setup
# (as root): images/debian/prepare-host.sh USER. About a minute, mostly
# downloads. HUSK_BUILD_OPTS adds options to husk build (-c zstd, --mirror URL).
set -euo pipefail

die() { echo "build.sh: error: $*" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: build.sh OUTDIR [HUSK]" >&2; exit 2; }
outdir=$1
husk=${2:-$here/../../bin/husk}
[ -x "$husk" ] || die "husk '$husk' not found; build it first (tests/build.sh)"
[ "$(id -u)" -ne 0 ] || die "run this as an ordinary user, not root (the point is an unprivileged build)"
command -v unsquashfs >/dev/null || die "unsquashfs not found (package squashfs-tools)"

mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
# shellcheck disable=SC2086 # options are words
"$husk" build ${HUSK_BUILD_OPTS:-} --context "$here/../.." "$here/recipe" "$outdir/debian.sqfs"
if [ -e "$outdir/debian" ]; then
	chmod -R u+rwX "$outdir/debian" 2>/dev/null || true
	rm -rf "$outdir/debian"
fi
unsquashfs -q -no-xattrs -d "$outdir/debian" "$outdir/debian.sqfs" >/dev/null
chmod -R u+rwX,go+rX "$outdir/debian"
echo "build.sh: $outdir/debian.sqfs and $outdir/debian/" >&2
