# Helpers of the Slurm plugin's tests (t_spank*.sh), sourced after lib.sh.
#
# tests/run passes SLURM_CONF (the cluster, whose plugstack.conf includes
# DIR/plugstack.d/*.conf, writable by the test user) and SPANK_SO (the staged
# spank_husk.so). Each file registers the plugin in a plugstack.d file of its
# own (`plugin ARGS...`), removed when it exits.
if [ -z "${SLURM_CONF:-}" ] || [ -z "${SPANK_SO:-}" ] || [ ! -f "${SPANK_SO:-}" ]; then
	echo "not ok - environment: SLURM_CONF and SPANK_SO (the staged spank_husk.so) must be set by tests/run"
	exit 1
fi
CLUSTER=$(dirname "$SLURM_CONF")
PLUGCONF=$CLUSTER/plugstack.d/husk-$(basename "$0" .sh).conf
SRUN_TIMEOUT=90

# Images: the test's own copies, so that allowed_dir can be tested.
ALLOWED=$STAGE/allowed
OUTSIDE=$STAGE/outside
mkdir -p "$ALLOWED" "$OUTSIDE" "$STAGE/data"
cp "$IMG_SQFS" "$ALLOWED/tiny.sqfs"
cp "$IMG_SQFS" "$OUTSIDE/tiny.sqfs"
ln -s "$OUTSIDE/tiny.sqfs" "$ALLOWED/escape.sqfs"
echo "data-$$" >"$STAGE/data/file"

# plugin ARGS...: (re)register the plugin with these plugstack.conf arguments.
plugin() {
	echo "required $SPANK_SO husk=$HUSK $*" >"$PLUGCONF.tmp" && mv "$PLUGCONF.tmp" "$PLUGCONF"
}
trap 'rm -f "$PLUGCONF" "$PLUGCONF.tmp"' EXIT
plugin

# run_srun ARG...: srun, bounded, from $STAGE; sets STATUS, OUT, ERR.
run_srun() {
	LAST_CMD="srun $*"
	(cd "$STAGE" && exec timeout -k 5 "$SRUN_TIMEOUT" srun "$@" </dev/null >"$OUT" 2>"$ERR")
	STATUS=$?
}

# Every node must still be usable: not drained, not down.
want_node_ok() {
	local line name state n=0
	while read -r line; do
		name=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$line")
		state=$(sed -n 's/.* State=\([^ ]*\).*/\1/p' <<<"$line")
		n=$((n + 1))
		case $state in
		*DRAIN* | *DOWN* | *FAIL*) case_fail "node $name is $state after the failure" ;;
		'') case_fail "cannot read the state of node $name" ;;
		esac
	done <<<"$(scontrol show node -o)"
	[ "$n" -gt 0 ] || case_fail "scontrol show node lists no node"
}

# After the steps: no husk process, no session server, no FUSE mount left.
want_nothing_left() {
	local left
	left=$(wait_procs_gone "$HUSK" 15) || case_fail "husk processes left: $left"
	left=$(wait_procs_gone husk-session 15) || case_fail "session servers left: $left"
	fuse_mounts >"$SCRATCH/now.fuse"
	cmp -s "$SCRATCH/base.fuse" "$SCRATCH/now.fuse" || case_fail "new FUSE mounts on the host"
}

# run_sbatch SCRIPT ARG...: submit, wait for the job to leave the queue (poll
# squeue: sbatch --wait polls slowly), leave its output in $OUT.
run_sbatch() {
	local script=$1 id deadline=$((SECONDS + SRUN_TIMEOUT))
	shift
	LAST_CMD="sbatch $* $script"
	rm -f "$STAGE/job.out"
	id=$(cd "$STAGE" && sbatch --parsable -o "$STAGE/job.out" "$@" "$script" 2>"$ERR") || {
		STATUS=$?
		return
	}
	id=${id%%;*}
	while [ "$SECONDS" -le "$deadline" ] && [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; do
		sleep 0.2
	done
	cp "$STAGE/job.out" "$OUT" 2>/dev/null || : >"$OUT"
	STATUS=$(scontrol show job "$id" 2>/dev/null | sed -n 's/.*ExitCode=\([0-9]*\):.*/\1/p')
}

