#!/bin/bash
# husk build FROM debian:bookworm, unprivileged: mmdebstrap bootstraps the
# base, and apt-get installs a package in a RUN step under root emulation.
# Needs the network path to a Debian mirror that apt-get on this machine uses.
. "$(dirname "$0")/lib.sh"

HUSK_TIMEOUT=600
B=$STAGE/debian
mkdir -p "$B"

if ! command -v mmdebstrap >/dev/null 2>&1; then
	case_skip "FROM debian:bookworm" "mmdebstrap is not installed"
	done_testing
fi
if ! grep -q "^$MY_USER:" /etc/subuid 2>/dev/null; then
	case_skip "FROM debian:bookworm" "$MY_USER has no subordinate ids in /etc/subuid"
	done_testing
fi

cat >"$B/recipe" <<'EOF2'
FROM debian:bookworm
RUN apt-get update -q && apt-get install -y -q --no-install-recommends hello && \
    adduser --system --no-create-home husk-svc && id husk-svc
ENV LANG=C.UTF-8
EOF2

case_begin "FROM debian:bookworm with apt-get install in a RUN step"
mine_in_tmp() { find /tmp -maxdepth 1 -mindepth 1 -user "$MY_UID" | sort; }
before_tmp=$(mine_in_tmp)
SOURCE_DATE_EPOCH=1700000000 run_husk build "$B/recipe" "$B/deb.sqfs"
want_status 0
want_re "step 1/3: FROM debian:bookworm" "$ERR"
want_re "^uid=[0-9]+\\(husk-svc\\)"
after_tmp=$(mine_in_tmp)
if [ "$before_tmp" != "$after_tmp" ]; then
	case_fail "/tmp changed: $(diff <(echo "$before_tmp") <(echo "$after_tmp") | tr '\n' ' ')"
fi
case_end

case_begin "the Debian image runs the installed program; apt's lists and logs are gone"
run_husk run "$B/deb.sqfs" -- /bin/sh -c 'hello; ls /var/lib/apt/lists | wc -l; ls /var/log/apt 2>/dev/null | wc -l; echo "$LANG"'
want_status 0
want_line "Hello, world!"
want_line "C.UTF-8"
if [ "$(sed -n 2p "$OUT")" != 0 ] && [ "$(sed -n 2p "$OUT")" != 1 ]; then
	case_fail "apt lists left in the image: $(sed -n 2p "$OUT")"
fi
case_end

# The project's own image for the MPI tests and benchmarks (images/debian/recipe).
case_begin "images/debian/recipe builds: Open MPI, a compiler, Python with numpy, the data file"
run_husk build -q --context "$DEBIAN_CONTEXT" "$DEBIAN_RECIPE" "$B/mpi.sqfs"
want_status 0
run_husk run "$B/mpi.sqfs" -- /bin/sh -c 'python3 -c "import numpy; print(\"numpy\", numpy.__version__)"; mpirun --version | head -1; mpicc --showme:command; stat -c %s /data/blob.bin; for p in hello pingpong allreduce; do command -v $p; done'
want_status 0
want_line "/opt/husk-mpi/bin/hello"
want_line "/opt/husk-mpi/bin/pingpong"
want_line "/opt/husk-mpi/bin/allreduce"
want_re "^numpy [0-9]"
want_re "^mpirun \\(Open MPI\\) 4"
want_line "gcc"
want_line "41943040"
run_husk inspect "$B/mpi.sqfs"
want_re "husk Debian 12 MPI image"
case_end

# The image's MPI wired to the host's mpirun, one husk per rank. The ranks
# join one node-local session by themselves (mpirun's job id), so they share
# a user namespace and Open MPI's single-copy CMA path works between them.
if command -v mpirun >/dev/null 2>&1 && [ -s "$B/mpi.sqfs" ]; then
	unset OMPI_MCA_btl_vader_single_copy_mechanism
	export OMPI_MCA_rmaps_base_oversubscribe=1
	run_mpirun() { # ARG...: mpirun, bounded; sets STATUS, OUT, ERR like run_husk
		LAST_CMD="mpirun $*"
		timeout -k 5 120 mpirun "$@" </dev/null >"$OUT" 2>"$ERR"
		STATUS=$?
	}
	case_begin "mpirun -np 2 husk run: hello from both ranks inside the image"
	run_mpirun -np 2 "$HUSK" run "$B/mpi.sqfs" -- hello
	want_status 0
	want_re "^hello from rank 0 of 2 on .*, uid $MY_UID, inside husk image $B/mpi.sqfs$"
	want_re "^hello from rank 1 of 2 on .*, uid $MY_UID, inside husk image $B/mpi.sqfs$"
	case_end

	case_begin "mpirun -np 2 husk run: ping-pong up to 1 MiB and an allreduce, data checked"
	run_mpirun -np 2 "$HUSK" run "$B/mpi.sqfs" -- pingpong 1048576 200
	want_status 0
	want_re "^ +1048576 +[0-9.]+ +[0-9.]+$"
	run_mpirun -np 2 "$HUSK" run "$B/mpi.sqfs" -- allreduce 65536
	want_status 0
	want_re "^allreduce of 65536 doubles on 2 ranks: .* sums correct$"
	case_end

	case_begin "mpirun -np 2 husk run: one session by itself, CMA single copy up to 4 MiB"
	run_mpirun -np 2 "$HUSK" run -v "$B/mpi.sqfs" -- /bin/sh -c \
		'readlink /proc/self/ns/user >&2; exec pingpong'
	want_status 0
	want_re "^ +4194304 +[0-9.]+ +[0-9.]+$"
	cat "$OUT" | sed 's/^/# /'
	want_no_re "CMA|user namespace|single.copy|process_vm" "$ERR"
	[ "$(grep -c 'joined session .*(started it)' "$ERR")" = 1 ] &&
		[ "$(grep -c 'joined session .*(existing)' "$ERR")" = 1 ] ||
		case_fail "the two ranks did not join one session"
	[ "$(grep '^user:' "$ERR" | sort -u | wc -l)" = 1 ] ||
		case_fail "the two ranks are in different user namespaces"
	run_mpirun -np 2 "$HUSK" run --no-join "$B/mpi.sqfs" -- /bin/sh -c 'readlink /proc/self/ns/user'
	want_status 0
	[ "$(grep -c '^user:' "$OUT")" = 2 ] && [ "$(sort -u "$OUT" | wc -l)" = 2 ] ||
		case_fail "--no-join: want two user namespaces"
	case_end
else
	case_skip "mpirun -np 2 husk run" "no host mpirun (openmpi-bin) or no MPI image"
fi

done_testing
