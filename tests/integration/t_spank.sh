#!/bin/bash
# The Slurm SPANK plugin spank_husk.so on a real one-node cluster: srun and
# sbatch with --husk-image (MPI hello and ping-pong inside the Debian MPI
# image), the other --husk-* options, the site's plugstack.conf arguments,
# bad images (a clear message on srun's stderr, exit status 125, the node
# not drained), the task's ids, groups and oom_score_adj, one husk session
# per step and node, and nothing left behind.
# needs: slurm
# needs: mpi-image
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/spank_lib.sh"

# --- MPI inside the image -------------------------------------------------------

if [ -z "${MPI_SQFS:-}" ]; then
	echo "not ok - MPI image: tests/run could not build it (see its log)"
	exit 1
fi

HOST=$(hostname)

case_begin "srun --husk-image: MPI hello, 2 ranks, inside the image"
run_srun --mpi=pmix -n 2 --husk-image="$MPI_SQFS" /opt/husk-mpi/bin/hello
want_status 0
want_line "hello from rank 0 of 2 on $HOST, uid $MY_UID, inside husk image $MPI_SQFS"
want_line "hello from rank 1 of 2 on $HOST, uid $MY_UID, inside husk image $MPI_SQFS"
want_re '^library: Open MPI'
case_end

case_begin "srun --husk-image: MPI ping-pong, 8 B to 4 MiB, data checked"
run_srun --mpi=pmix -n 2 --husk-image="$MPI_SQFS" /opt/husk-mpi/bin/pingpong
want_status 0
want_re '^ +8 +[0-9.]+ +[0-9.]+$'
want_re '^ +4194304 +[0-9.]+ +[0-9.]+$'
want_no_re 'corrupted' "$ERR"
case_end

case_begin "srun --husk-image: the image's files, not the host's"
want=$("$HUSK" run --no-join "$MPI_SQFS" -- cat /etc/debian_version 2>/dev/null)
run_srun -n 2 --husk-image="$MPI_SQFS" sh -c 'cat /etc/debian_version; ls /opt/husk-mpi/bin/hello'
want_status 0
[ -n "$want" ] || case_fail "husk run could not read /etc/debian_version of the image"
want_count 2 "$want"
want_count 2 /opt/husk-mpi/bin/hello
[ ! -e /opt/husk-mpi/bin/hello ] || diag "(the host has /opt/husk-mpi/bin/hello too)"
case_end

case_begin "sbatch --husk-image: the script on the host, its steps in the image"
cat >"$STAGE/job.sh" <<'JOB'
#!/bin/sh
echo "script: ${HUSK_CONTAINER:-host}"
srun --mpi=pmix -n 2 /opt/husk-mpi/bin/hello
srun --mpi=pmix -n 2 /opt/husk-mpi/bin/pingpong
srun --husk-image=none -n 1 sh -c 'echo "none: ${HUSK_CONTAINER:-host}"'
JOB
chmod +x "$STAGE/job.sh"
run_sbatch "$STAGE/job.sh" -n 2 --husk-image="$MPI_SQFS"
want_status 0
want_line "script: host"
want_line "hello from rank 0 of 2 on $HOST, uid $MY_UID, inside husk image $MPI_SQFS"
want_line "hello from rank 1 of 2 on $HOST, uid $MY_UID, inside husk image $MPI_SQFS"
want_re '^ +4194304 +[0-9.]+ +[0-9.]+$'
want_line "none: host"
case_end

# --- the tasks: ids, groups, oom_score_adj, one session ---------------------------

case_begin "the tasks are the user's: uid, gid, groups, no capabilities"
run_srun -n 2 --husk-image="$IMG_SQFS" /probe ids
want_status 0
want_count 2 "uid=$MY_UID"
want_count 2 "euid=$MY_UID"
want_count 2 "gid=$MY_GID"
want_count 2 "egid=$MY_GID"
want_count 2 "groups=$(id -G | tr ' ' ',')"
run_srun -n 1 --husk-image="$IMG_SQFS" sh -c 'grep -E "^Cap(Prm|Eff|Amb)" /proc/self/status; grep NoNewPrivs /proc/self/status'
want_status 0
want_line "CapPrm:	0000000000000000"
want_line "CapEff:	0000000000000000"
want_line "NoNewPrivs:	1"
case_end

case_begin "the tasks do not keep slurmstepd's oom_score_adj"
run_srun -n 1 --husk-image="$IMG_SQFS" cat /proc/self/oom_score_adj
want_status 0
want_line 0
plugin oom_score_adj=300
run_srun -n 2 --husk-image="$IMG_SQFS" cat /proc/self/oom_score_adj
want_status 0
want_count 2 300
plugin
case_end

case_begin "the tasks of one step share one husk session (one user namespace)"
run_srun -n 2 --husk-image="$IMG_SQFS" readlink /proc/self/ns/user
want_status 0
[ "$(sort -u "$OUT" | wc -l)" = 1 ] || case_fail "tasks in different user namespaces"
[ "$(head -n 1 "$OUT")" != "$(readlink /proc/self/ns/user)" ] || case_fail "tasks not in a user namespace"
case_end

case_begin "a command name is looked up in the image, not in the host's PATH"
# the host has /usr/bin/stat, the tiny image only /bin/stat
run_srun -n 1 --husk-image="$IMG_SQFS" stat -c %n /proc/self/exe
want_status 0
want_line /proc/self/exe
run_srun -n 1 --husk-image="$IMG_SQFS" sh -c 'env | grep -c HUSK_SPANK_ || true'
want_line 0
case_end

# --- options ----------------------------------------------------------------------

case_begin "--husk-bind, --husk-env, --husk-workdir"
run_srun -n 1 --husk-image="$IMG_SQFS" --husk-bind="$STAGE/data:/data:ro,$STAGE/data:/data2" \
	--husk-env="A=1,B=x,y,C_2=z" --husk-workdir=/etc \
	sh -c 'cat /data/file /data2/file; echo "A=$A B=$B C_2=$C_2"; pwd; touch /data/x 2>/dev/null || echo ro'
want_status 0
want_count 2 "data-$$"
want_line "A=1 B=x,y C_2=z"
want_line /etc
want_line ro
case_end

case_begin "--husk-no-home hides \$HOME; without it \$HOME is there"
echo "home-$$" >"$HOME/.husk-t-spank"
run_srun -n 1 --husk-image="$IMG_SQFS" cat "$HOME/.husk-t-spank"
want_status 0
want_line "home-$$"
run_srun -n 1 --husk-image="$IMG_SQFS" --husk-no-home sh -c "cat '$HOME/.husk-t-spank' 2>/dev/null || echo hidden"
want_status 0
want_line hidden
rm -f "$HOME/.husk-t-spank"
case_end

case_begin "bad option values are refused by srun itself"
run_srun -n 1 --husk-image="$IMG_SQFS" --husk-workdir=relative true
[ "$STATUS" != 0 ] || case_fail "srun accepted --husk-workdir=relative"
want_re 'husk-workdir' "$ERR"
run_srun -n 1 --husk-image="$IMG_SQFS" --husk-env=1BAD true
[ "$STATUS" != 0 ] || case_fail "srun accepted --husk-env=1BAD"
run_srun -n 1 --husk-image="$IMG_SQFS" --husk-mpi=sideways true
[ "$STATUS" != 0 ] || case_fail "srun accepted --husk-mpi=sideways"
case_end

# --- the site's arguments -----------------------------------------------------------

case_begin "plugstack.conf: image_dir, allowed_dir, bind"
plugin "image_dir=$ALLOWED" "allowed_dir=$ALLOWED" "bind=$STAGE/data:/site"
run_srun -n 1 --husk-image=tiny sh -c 'cat /site/file; echo $HUSK_IMAGE'
want_status 0
want_line "data-$$"
want_line "$ALLOWED/tiny.sqfs"
run_srun -n 1 --husk-image="$OUTSIDE/tiny.sqfs" true
want_status 125
want_re "^husk: --husk-image '$OUTSIDE/tiny.sqfs': not allowed here: images must lie below $ALLOWED" "$ERR"
run_srun -n 1 --husk-image="$ALLOWED/escape.sqfs" true
want_status 125
want_re "^husk: --husk-image '$ALLOWED/escape.sqfs': not allowed here" "$ERR"
want_node_ok
plugin
case_end

case_begin "plugstack.conf: a wrong husk= fails the step with a clear message"
plugin husk=/nonexistent/husk
run_srun -n 1 --husk-image="$IMG_SQFS" true
want_status 125
want_re "^husk: cannot run husk at '/nonexistent/husk' \(plugstack.conf's husk=\)" "$ERR"
want_node_ok
plugin
case_end

# --- bad images ------------------------------------------------------------------------

# bad_image NAME IMAGE ERE: the step fails with 125 and a clear line on stderr.
bad_image() {
	case_begin "bad --husk-image ($1): srun says why, exit 125, node not drained"
	run_srun -n 2 --husk-image="$2" true
	want_status 125
	want_re "$3" "$ERR"
	want_node_ok
	case_end
}
bad_image missing "$STAGE/nope.sqfs" "^husk: --husk-image '$STAGE/nope.sqfs': No such file or directory"
bad_image "not an image" "$NOT_IMAGE" "^husk: --husk-image '$NOT_IMAGE': not a SquashFS image nor a directory"
bad_image truncated "$TRUNC_SQFS" "^husk: --husk-image '$TRUNC_SQFS': corrupt SquashFS superblock"
bad_image corrupt "$CORRUPT_SQFS" "^husk: image '[^']*corrupt.sqfs': corrupt"
bad_image "wrong pin" "$IMG_SQFS@sha256:$(printf '0%.0s' $(seq 64))" "^husk: .*sha256"

case_begin "a step after the failures still runs (the node is fine)"
run_srun -n 2 --husk-image="$IMG_SQFS" true
want_status 0
want_node_ok
case_end

# --- leftovers ---------------------------------------------------------------------------

case_begin "nothing left behind: no husk process, no FUSE mount"
want_nothing_left
case_end

done_testing
