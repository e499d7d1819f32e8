#!/bin/bash
# needs: mpi-image
# husk run --mpi=host: the host's Open MPI (libraries, MCA plugins, help
# texts, tuning) replaces the image's; refused for an image without MPI,
# built against another MPI, or whose glibc is older than the host
# libraries need. Profiles: the shipped ones (profiles/), through a
# --config that includes them.
. "$(dirname "$0")/lib.sh"

PROFILES=$(cd "$(dirname "$HUSK")/../profiles" 2>/dev/null && pwd)
CONF=$STAGE/conf
mkdir -p "$CONF"
chmod 0755 "$CONF"
printf 'include = %s/*.conf\n' "$PROFILES" >"$CONF/husk.conf"
export HUSK_CONFIG=$CONF/husk.conf
LIBMPI=$(/sbin/ldconfig -p | awk '$1 == "libmpi.so.40" && /x86-64/ { print $NF; exit }')
LIBMPI=${LIBMPI:+$(readlink -f "$LIBMPI")}   # the file itself, e.g. .../libmpi.so.40.30.4

run_mpirun() { # ARG...: mpirun, bounded; sets STATUS, OUT, ERR like run_husk
	LAST_CMD="mpirun $*"
	timeout -k 5 120 mpirun "$@" </dev/null >"$OUT" 2>"$ERR"
	STATUS=$?
}
unset OMPI_MCA_btl_vader_single_copy_mechanism
export OMPI_MCA_rmaps_base_oversubscribe=1

if [ -z "$PROFILES" ] || [ ! -f "$PROFILES/openmpi.conf" ]; then
	echo "not ok - the shipped profiles are not staged beside husk ($HUSK/../profiles)"
	exit 1
fi
if [ -z "$MPI_SQFS" ] || [ -z "$LIBMPI" ] || ! command -v mpirun >/dev/null; then
	case_skip "--mpi=host" "no MPI image, or no host Open MPI (openmpi-bin, tests/deps.sh)"
	done_testing
fi

case_begin "--dry-run --mpi=host: the host's libmpi, plugins and variables are shown"
run_husk run --dry-run --mpi=host "$MPI_SQFS" -- pingpong
want_status 0
want_re "^  $LIBMPI +-> /\\.husk-host/lib/libmpi\\.so\\.40 +ro,"
want_re "-> /\\.husk-host/lib/libopen-pal\\.so\\.40 +ro,"
want_re "-> /\\.husk-host/openmpi/lib/openmpi3 +ro,"
want_re "^  LD_LIBRARY_PATH=/\\.husk-host/lib"
want_re "^  OPAL_PKGLIBDIR=/\\.husk-host/openmpi/lib/openmpi3$"
want_re "^  mpi +openmpi +host $LIBMPI, image /.*libmpi\\.so\\.40\\.[0-9.]+, image glibc 2\\.[0-9]+"
want_re "^  library +libmpi\\.so\\.40 +$LIBMPI \\(needs glibc 2\\.[0-9]+\\)$"
want_no_re "-> /\\.husk-host/lib/(libc|libm|libpthread|libdl|librt)\\.so"
case_end

case_begin "mpirun -np 2 husk run --mpi=host: ping-pong on the host's Open MPI (loader and plugins from /.husk-host)"
run_mpirun -np 2 "$HUSK" run --mpi=host -e LD_DEBUG=libs "$MPI_SQFS" -- pingpong 4194304 100
want_status 0
want_re "^ +8 +[0-9.]+ +[0-9.]+$"
want_re "^ +4194304 +[0-9.]+ +[0-9.]+$"
# The loader's own account of what it ran: libmpi from the injection
# directory in both ranks, the image's never; MCA plugins from the host tree.
[ "$(grep -c 'calling init: /\.husk-host/lib/libmpi\.so\.40$' "$ERR")" = 2 ] ||
	case_fail "libmpi.so.40 was not loaded from /.husk-host/lib in both ranks"
want_no_re "calling init: /(usr/)?lib/.*/libmpi\\.so" "$ERR"
want_re "calling init: /\\.husk-host/openmpi/lib/openmpi3/mca_btl_vader\\.so$" "$ERR"
want_no_re "calling init: /usr/lib/x86_64-linux-gnu/openmpi/" "$ERR"
case_end

case_begin "--mpi=host: the file inside is the host's (same bytes), read-only"
run_husk run --mpi=host "$MPI_SQFS" -- /bin/sh -c \
	'sha256sum /.husk-host/lib/libmpi.so.40; echo x >/.husk-host/lib/libmpi.so.40 2>/dev/null || echo read-only'
want_status 0
want_re "^$(sha256sum "$LIBMPI" | cut -d' ' -f1)  /\\.husk-host/lib/libmpi\\.so\\.40$"
want_line "read-only"
case_end

case_begin "--mpi=host: the provenance record names each injected library and its host file"
run_husk run --mpi=host --provenance "$STAGE/prov.json" "$MPI_SQFS" -- /bin/true
want_status 0
jq -e --arg f "$LIBMPI" '[.. | objects | select(.what? == "library" and .name == "libmpi.so.40" and
	(.detail | startswith($f)))] | length == 1' "$STAGE/prov.json" >/dev/null ||
	case_fail "no library item for libmpi.so.40 from $LIBMPI in the record"
jq -e '[.. | objects | select(.what? == "mpi" and .name == "openmpi")] | length == 1' \
	"$STAGE/prov.json" >/dev/null || case_fail "no mpi item in the record"
case_end

case_begin "--mpi=host with the busybox image (no MPI, no glibc): refused in one line"
for kind in $KINDS; do
	run_husk run --mpi=host "$(img_of "$kind")" -- /bin/true
	want_status 125
	want_husk_error
	want_re "^husk: --mpi=host: image '.*' has no MPI library husk has a profile for \\(.*libmpi\\.so\\.40 for openmpi.*\\); " "$ERR"
done
export HUSK_MPI=host
run_husk run "$IMG_SQFS" -- /bin/true
unset HUSK_MPI
want_status 125
want_re "has no MPI library" "$ERR"
run_husk run --mpi=container "$IMG_SQFS" -- /bin/true
want_status 0
case_end

# An image built against MPICH (libmpi.so.12), on this host that has Open MPI
# only: a directory image made from the busybox one, with a real shared
# library of that soname and a libc.so.6 with GLIBC versions.
MPICH_IMG=$STAGE/mpich-img
cp -a "$IMG_DIR" "$MPICH_IMG"
mkdir -p "$MPICH_IMG/usr/lib/x86_64-linux-gnu"
echo 'int MPI_Init(void) { return 0; }' >"$STAGE/mpi.c"
printf 'GLIBC_2.2.5 { global: f; };\nGLIBC_2.36 { global: g; } GLIBC_2.2.5;\n' >"$STAGE/libc.map"
echo 'int f, g;' >"$STAGE/libc.c"
cc -shared -fPIC -nostdlib -Wl,-soname,libc.so.6 -Wl,--version-script="$STAGE/libc.map" \
	-o "$MPICH_IMG/usr/lib/x86_64-linux-gnu/libc.so.6" "$STAGE/libc.c"
cc -shared -fPIC -nostdlib -Wl,-soname,libmpi.so.12 -o "$MPICH_IMG/usr/lib/x86_64-linux-gnu/libmpi.so.12" "$STAGE/mpi.c"

case_begin "--mpi=host, image built against MPICH, host has Open MPI: refused in one line"
run_husk run --mpi=host "$MPICH_IMG" -- /bin/true
want_status 125
want_husk_error
want_re "^husk: --mpi=host: image '$MPICH_IMG' is built against mpich \\(libmpi\\.so\\.12\\), but this host has no mpich \\(host MPI: libmpi\\.so\\.40 for openmpi\\); use --mpi=container" "$ERR"
case_end

# A host whose Open MPI needs a newer glibc than the image's (2.36): a fake
# host root (HUSK_HOST_ROOT) with a libmpi.so.40 linked against a libc.so.6
# that defines GLIBC_2.99, and a linker cache made by the real ldconfig.
FAKE=$STAGE/host
mkdir -p "$FAKE/etc" "$FAKE/usr/lib/x86_64-linux-gnu"
echo /usr/lib/x86_64-linux-gnu >"$FAKE/etc/ld.so.conf"
printf 'GLIBC_2.2.5 { global: f; };\nGLIBC_2.99 { global: g; } GLIBC_2.2.5;\n' >"$STAGE/libc99.map"
cc -shared -fPIC -nostdlib -Wl,-soname,libc.so.6 -Wl,--version-script="$STAGE/libc99.map" \
	-o "$FAKE/usr/lib/x86_64-linux-gnu/libc.so.6" "$STAGE/libc.c"
echo 'extern int g; int MPI_Init(void) { return g; }' >"$STAGE/mpi99.c"
cc -shared -fPIC -nostdlib -Wl,-soname,libmpi.so.40 -o "$FAKE/usr/lib/x86_64-linux-gnu/libmpi.so.40.99.0" \
	"$STAGE/mpi99.c" "$FAKE/usr/lib/x86_64-linux-gnu/libc.so.6"
unshare -r /sbin/ldconfig -r "$FAKE"

case_begin "--mpi=host, host library needs a newer glibc than the image has: refused in one line"
export HUSK_HOST_ROOT=$FAKE
run_husk run --mpi=host "$MPI_SQFS" -- pingpong
unset HUSK_HOST_ROOT
want_status 125
want_husk_error
want_re "^husk: --mpi=host: host library 'libmpi\\.so\\.40' \\('/usr/lib/x86_64-linux-gnu/libmpi\\.so\\.40\\.99\\.0'\\) needs glibc 2\\.99, but image '$MPI_SQFS' has glibc 2\\.36; use an image with glibc 2\\.99 or newer, or --mpi=container$" "$ERR"
case_end

# A host with InfiniBand: a fake host root whose libmpi.so.40 needs only
# GLIBC_2.2.5, with libibverbs and an mlx5 provider, the provider's driver
# list and a verbs device node; the same tree without the device.
IB=$STAGE/ibhost
L=$IB/usr/lib/x86_64-linux-gnu
mkdir -p "$IB/etc/libibverbs.d" "$L/libibverbs" "$IB/dev/infiniband"
echo /usr/lib/x86_64-linux-gnu >"$IB/etc/ld.so.conf"
printf 'GLIBC_2.2.5 { global: f; g; };\n' >"$STAGE/libc25.map"
cc -shared -fPIC -nostdlib -Wl,-soname,libc.so.6 -Wl,--version-script="$STAGE/libc25.map" \
	-o "$L/libc.so.6" "$STAGE/libc.c"
echo 'int ibv_get_device_list(void) { return 0; }' >"$STAGE/ibv.c"
cc -shared -fPIC -nostdlib -Wl,-soname,libibverbs.so.1 -o "$L/libibverbs.so.1.14.44.0" "$STAGE/ibv.c" "$L/libc.so.6"
echo 'int mlx5dv_query_device(void) { return 0; }' >"$STAGE/mlx5.c"
cc -shared -fPIC -nostdlib -Wl,-soname,libmlx5.so.1 -o "$L/libmlx5.so.1.24.44.0" "$STAGE/mlx5.c" "$L/libibverbs.so.1.14.44.0"
cp "$L/libmlx5.so.1.24.44.0" "$L/libibverbs/libmlx5-rdmav34.so"
echo 'driver mlx5' >"$IB/etc/libibverbs.d/mlx5.driver"
echo 'extern int f; int MPI_Init(void) { return f; }' >"$STAGE/mpi25.c"
cc -shared -fPIC -nostdlib -Wl,-soname,libmpi.so.40 -o "$L/libmpi.so.40.30.5" "$STAGE/mpi25.c" "$L/libc.so.6"
unshare -r /sbin/ldconfig -r "$IB"
: >"$IB/dev/infiniband/uverbs0"

case_begin "--mpi=host on an InfiniBand host: the verbs library, its providers and driver list go in too"
HUSK_HOST_ROOT=$IB run_husk run --dry-run --mpi=host "$MPI_SQFS" -- pingpong
want_status 0
want_re "interconnect.*infiniband"
want_re "libibverbs\.so\.1"
want_re "libmlx5\.so\.1"
want_re "/etc/libibverbs\.d"
want_re "/usr/lib/x86_64-linux-gnu/libibverbs"
case_end

case_begin "--mpi=host on a host without InfiniBand devices: no verbs pieces"
rm -f "$IB/dev/infiniband/uverbs0"
rmdir "$IB/dev/infiniband"
HUSK_HOST_ROOT=$IB run_husk run --dry-run --mpi=host "$MPI_SQFS" -- pingpong
want_status 0
want_no_re "infiniband"
want_no_re "libibverbs"
case_end

case_begin "--mpi=host leaves nothing behind"
leftover_baseline
run_husk run --mpi=host "$MPI_SQFS" -- /bin/true
want_status 0
run_husk run --mpi=host "$IMG_SQFS" -- /bin/true
want_status 125
check_leftovers
case_end

done_testing
