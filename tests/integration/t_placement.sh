#!/bin/bash
# --placement=auto and husk topology.  Two kinds of topology:
#  - a fake one, an hwloc XML file of 2 packages x 2 NUMA nodes x 8 cores with
#    4 GPUs and 2 NICs attached to NUMA nodes (HWLOC_XMLFILE): checks which
#    rank gets which CPUs, NUMA node, GPU and NIC.  Its CPUs need not exist
#    here, so husk decides and sets the variables but does not bind (and
#    says so); Cpus_allowed_list inside stays what the machine allows.
#  - this machine's: ranks are really bound, checked from inside through
#    /proc/self/status (Cpus_allowed_list) and /proc/self/numa_maps.
. "$(dirname "$0")/lib.sh"

IMG=$IMG_SQFS
jqt() { jq -e "$@" >/dev/null; }
PLACE=$(dirname "$HUSK")/husk-place

# The CPUs this test may use, as the kernel lists them.
ALLOWED=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
CPUS=()
for range in ${ALLOWED//,/ }; do
	for c in $(seq "${range%-*}" "${range#*-}"); do CPUS+=("$c"); done
done

if [ ! -x "$PLACE" ]; then
	# husk built without hwloc: both ways in say so, once.
	case_begin "built without hwloc: --placement=auto says so"
	OMPI_COMM_WORLD_LOCAL_RANK=0 OMPI_COMM_WORLD_LOCAL_SIZE=1 run_husk run --placement=auto "$IMG" -- /bin/true
	want_status 125
	want_husk_error
	want_re "without hwloc.*libhwloc-dev" "$ERR"
	case_end
	case_begin "built without hwloc: husk topology says so"
	run_husk topology
	want_status 125
	want_husk_error
	want_re "without hwloc" "$ERR"
	case_end
	done_testing
fi

# The fake topology: hwloc's synthetic description, exported, with a PCI
# bridge per NUMA node (Group) holding its GPU, and a NIC on NUMA nodes 1
# and 2.  The GPU numbers follow PCI order, not NUMA order: NUMA node i has
# GPU gpus[i].
XML=$STAGE/fake-topology.xml
lstopo-no-graphics --input "pack:2 group:2 [numa] core:8 pu:1" --of xml "$STAGE/synth.xml" ||
	echo "not ok - lstopo-no-graphics (package hwloc) made no synthetic topology"
awk -v gpus="2 0 3 1" -v nics="1:mlx5_0 2:mlx5_1" '
BEGIN { split(gpus, G, " "); n = split(nics, N, " ")
	for (i = 1; i <= n; i++) { split(N[i], a, ":"); nic[a[1]] = a[2] }
	gp = 1000 }
{ print }
/<object type="Group"/ {
	g = grp++; gp += 10; bus = g * 16 + 1
	printf "<object type=\"Bridge\" gp_index=\"%d\" bridge_type=\"0-1\" depth=\"0\" bridge_pci=\"0000:[%02x-%02x]\">\n", gp, bus, bus + 1
	printf "<object type=\"PCIDev\" gp_index=\"%d\" pci_busid=\"0000:%02x:00.0\" pci_type=\"0302 [10de:20b0] [10de:1450] a1\" pci_link_speed=\"0.0\">\n", gp + 1, bus
	printf "<object type=\"OSDev\" gp_index=\"%d\" name=\"nvml%d\" subtype=\"NVML\" osdev_type=\"1\"/>\n</object>\n", gp + 2, G[g + 1]
	if (g in nic) {
		printf "<object type=\"PCIDev\" gp_index=\"%d\" pci_busid=\"0000:%02x:00.0\" pci_type=\"0207 [15b3:101b] [15b3:0007] 00\" pci_link_speed=\"0.0\">\n", gp + 3, bus + 1
		printf "<object type=\"OSDev\" gp_index=\"%d\" name=\"%s\" osdev_type=\"3\"><info name=\"Port1State\" value=\"4\"/></object>\n</object>\n", gp + 4, nic[g]
	}
	print "</object>"
}' "$STAGE/synth.xml" >"$XML"

# ---- husk topology ---------------------------------------------------------

case_begin "husk topology: the fake topology and 4 local ranks"
HWLOC_XMLFILE=$XML run_husk topology --local-size 4
want_status 0
want_re "^topology: HWLOC_XMLFILE='.*' \(not this machine's"
want_line "packages: 2, cores: 32, hardware threads: 32"
want_line "NUMA node 2: cpus 16-23"
want_line "GPU nvml0 (NVIDIA 0000:11:00.0): NUMA node 1, CUDA_VISIBLE_DEVICES=0"
want_line "NIC mlx5_1 (Mellanox 0000:22:00.0): NUMA node 2, UCX_NET_DEVICES=mlx5_1:1"
want_line "  rank 0/4: cpus 0-7, mem node 0, gpu 2, nic mlx5_0"
want_line "  rank 1/4: cpus 8-15, mem node 1, gpu 0, nic mlx5_0"
want_line "  rank 2/4: cpus 16-23, mem node 2, gpu 3, nic mlx5_1"
want_line "  rank 3/4: cpus 24-31, mem node 3, gpu 1, nic mlx5_1"
case_end

case_begin "husk topology: the local size defaults to the launcher's"
HWLOC_XMLFILE=$XML SLURM_LOCALID=0 SLURM_NODEID=1 SLURM_STEP_TASKS_PER_NODE="4,2" \
	run_husk topology
want_status 0
want_line "placement of 2 local ranks:"
want_line "  rank 1/2: cpus 16-31, mem nodes 2-3, gpus 1,3, nic mlx5_1"
case_end

case_begin "husk topology: without a launcher, one rank per GPU"
HWLOC_XMLFILE=$XML run_husk topology
want_status 0
want_line "placement of 4 local ranks:"
case_end

case_begin "husk topology --json: ranks, GPUs and NICs"
HWLOC_XMLFILE=$XML run_husk topology --json --local-size 8
want_status 0
want_true "ranks[5] is cpus 20-23 on NUMA node 2 with nvml3 and mlx5_1" \
	jqt '.ranks[5] | .cpus == "20-23" and .mems == "2" and .gpus == ["nvml3"] and
		.nics == ["mlx5_1"] and .env.CUDA_VISIBLE_DEVICES == "3"' "$OUT"
want_true "4 GPUs, 2 NICs, 4 NUMA nodes, not this system" \
	jqt '(.gpus | length) == 4 and (.nics | length) == 2 and (.numa_nodes | length) == 4 and
		.this_system == false' "$OUT"
case_end

case_begin "husk topology --cpus: a restricted CPU set"
run_husk topology --xml "$XML" --cpus 8-23 --local-size 4
want_status 0
want_line "allowed cpus: 8-23"
want_line "  rank 0/4: cpus 8-11, mem node 1, gpu 0, nic mlx5_0"
want_line "  rank 3/4: cpus 20-23, mem node 2, gpu 3, nic mlx5_1"
case_end

case_begin "husk topology: this machine"
run_husk topology --local-size 1
want_status 0
want_line "topology: this machine"
want_line "allowed cpus: $ALLOWED"
want_re "^NUMA node 0: cpus "
case_end

case_begin "husk topology: bad options and a missing topology file"
run_husk topology --local-size 0
want_status 125
want_husk_error
HWLOC_XMLFILE=$STAGE/nonexistent.xml run_husk topology
want_status 125
want_husk_error
want_re "HWLOC_XMLFILE='.*nonexistent.xml'.*unset it" "$ERR"
case_end

case_begin "husk help topology"
run_husk help topology
want_status 0
want_re "^Usage: husk topology"
case_end

# ---- husk run --placement=auto on the fake topology --------------------------

INSIDE='grep Cpus_allowed_list /proc/self/status; /probe env CUDA_VISIBLE_DEVICES UCX_NET_DEVICES HUSK_PLACEMENT'

want_rank() { # RANK SIZE CUDA UCX SUMMARY
	want_line "CUDA_VISIBLE_DEVICES=$3"
	want_line "UCX_NET_DEVICES=$4"
	want_line "HUSK_PLACEMENT=$5 (not bound)"
	# A foreign topology is not bound: the machine's CPUs stay.
	want_re "^Cpus_allowed_list:[[:space:]]+$ALLOWED\$"
}

gpus=(2 0 3 1)
nics=(mlx5_0 mlx5_0 mlx5_1 mlx5_1)
for r in 0 1 2 3; do
	case_begin "Open MPI local rank $r of 4 on the fake topology [${gpus[$r]}, ${nics[$r]}]"
	HWLOC_XMLFILE=$XML OMPI_COMM_WORLD_LOCAL_RANK=$r OMPI_COMM_WORLD_LOCAL_SIZE=4 \
		run_husk run --placement=auto "$IMG" -- /bin/sh -c "$INSIDE"
	want_status 0
	want_rank "$r" 4 "${gpus[$r]}" "${nics[$r]}:1" \
		"rank $r/4: cpus $((r * 8))-$((r * 8 + 7)), mem node $r, gpu ${gpus[$r]}, nic ${nics[$r]}"
	want_re "^husk: warning: placement not bound: the topology is HWLOC_XMLFILE" "$ERR"
	case_end
done

case_begin "Slurm local rank 1 of 2 on node 1 (tasks 8,2) [directory image]"
HWLOC_XMLFILE=$XML SLURM_LOCALID=1 SLURM_NODEID=1 SLURM_TASKS_PER_NODE=8,2 \
	run_husk run --placement=auto "$IMG_DIR" -- /bin/sh -c "$INSIDE"
want_status 0
want_rank 1 2 "1,3" "mlx5_1:1" "rank 1/2: cpus 16-31, mem nodes 2-3, gpus 1,3, nic mlx5_1"
case_end

case_begin "a CUDA_VISIBLE_DEVICES already set is narrowed, never widened"
HWLOC_XMLFILE=$XML CUDA_VISIBLE_DEVICES=1,3 OMPI_COMM_WORLD_LOCAL_RANK=0 OMPI_COMM_WORLD_LOCAL_SIZE=4 \
	run_husk run --placement=auto "$IMG" -- /probe env CUDA_VISIBLE_DEVICES
want_status 0
want_line "CUDA_VISIBLE_DEVICES=1"
HWLOC_XMLFILE=$XML OMPI_COMM_WORLD_LOCAL_RANK=0 OMPI_COMM_WORLD_LOCAL_SIZE=4 \
	run_husk run --placement=auto -e CUDA_VISIBLE_DEVICES=3 -e UCX_NET_DEVICES=all "$IMG" -- \
	/probe env CUDA_VISIBLE_DEVICES UCX_NET_DEVICES
want_status 0
want_line "CUDA_VISIBLE_DEVICES=3"
want_line "UCX_NET_DEVICES=all"
case_end

case_begin "--clean-env keeps what placement sets"
HWLOC_XMLFILE=$XML OMPI_COMM_WORLD_LOCAL_RANK=1 OMPI_COMM_WORLD_LOCAL_SIZE=4 \
	run_husk run --placement=auto --clean-env "$IMG" -- /probe env CUDA_VISIBLE_DEVICES UCX_NET_DEVICES
want_status 0
want_line "CUDA_VISIBLE_DEVICES=0"
want_line "UCX_NET_DEVICES=mlx5_0:1"
case_end

case_begin "the provenance record lists the placement"
HWLOC_XMLFILE=$XML PMIX_LOCAL_RANK=2 PMIX_LOCAL_SIZE=4 \
	run_husk run --placement=auto --provenance "$STAGE/prov.jsonl" "$IMG" -- /bin/true
want_status 0
want_true "a host item 'placement' with the rank's summary" \
	jqt '[.host_pieces[] | select(.what == "placement")] == [{"what": "placement",
		"name": "rank 2/4: cpus 16-23, mem node 2, gpu 3, nic mlx5_1 (not bound)",
		"detail": ("local rank from PMIx; not bound: the topology is HWLOC_XMLFILE=\u0027" +
			$xml + "\u0027, not this machine\u0027s")}]' --arg xml "$XML" "$STAGE/prov.jsonl"
want_true "env_changes.set has HUSK_PLACEMENT" \
	jqt '.env_changes.set.HUSK_PLACEMENT == "rank 2/4: cpus 16-23, mem node 2, gpu 3, nic mlx5_1 (not bound)"' \
	"$STAGE/prov.jsonl"
case_end

case_begin "--dry-run shows the placement and binds nothing"
HWLOC_XMLFILE=$XML MPI_LOCALRANKID=1 MPI_LOCALNRANKS=2 run_husk run --placement=auto --dry-run "$IMG" -- /bin/true
want_status 0
want_re "placement.*rank 1/2: cpus 16-31, mem nodes 2-3, gpus 1,3, nic mlx5_1"
case_end

case_begin "the site's default (placement = auto in husk.conf), and --placement=none over it"
printf '[run]\nplacement = auto\n' >"$STAGE/husk.conf"
HWLOC_XMLFILE=$XML OMPI_COMM_WORLD_LOCAL_RANK=3 OMPI_COMM_WORLD_LOCAL_SIZE=4 \
	run_husk run --config "$STAGE/husk.conf" "$IMG" -- /probe env CUDA_VISIBLE_DEVICES
want_status 0
want_line "CUDA_VISIBLE_DEVICES=1"
HWLOC_XMLFILE=$XML OMPI_COMM_WORLD_LOCAL_RANK=3 OMPI_COMM_WORLD_LOCAL_SIZE=4 \
	run_husk run --config "$STAGE/husk.conf" --placement=none "$IMG" -- /probe env CUDA_VISIBLE_DEVICES
want_status 0
want_line "CUDA_VISIBLE_DEVICES<unset>"
case_end

# ---- husk run --placement=auto on this machine: real binding ------------------

if [ "${#CPUS[@]}" -ge 2 ]; then
	c0=${CPUS[0]} c1=${CPUS[1]}
	# Only two CPUs, whatever else the machine has: ranks split them.
	printf '#!/bin/sh\nexec taskset -c %s,%s "%s" "$@"\n' "$c0" "$c1" "$HUSK" >"$STAGE/husk-2cpus"
	printf '#!/bin/sh\nexec taskset -c %s "%s" "$@"\n' "$c1" "$HUSK" >"$STAGE/husk-1cpu"
	chmod +x "$STAGE/husk-2cpus" "$STAGE/husk-1cpu"
	mine=("$c0" "$c1")
	for kind in $KINDS; do
		img=$(img_of "$kind")
		for r in 0 1; do
			case_begin "this machine: local rank $r of 2 is bound to CPU ${mine[$r]} [$kind]"
			leftover_baseline
			HUSK=$STAGE/husk-2cpus MPI_LOCALRANKID=$r MPI_LOCALNRANKS=2 \
				run_husk run --placement=auto "$img" -- /bin/sh -c \
				'grep Cpus_allowed_list /proc/self/status; /probe env HUSK_PLACEMENT; grep -c bind: /proc/self/numa_maps'
			want_status 0
			want_re "^Cpus_allowed_list:[[:space:]]+${mine[$r]}\$"
			want_re "^HUSK_PLACEMENT=rank $r/2: cpus ${mine[$r]}, mem node [0-9]+\$"
			want_no_re "not bound"
			# The memory policy is inherited: mappings say bind:N.
			want_re "^[1-9][0-9]*\$"
			check_leftovers
			case_end
		done
	done

	case_begin "this machine: a session server started by a placed rank serves unbound"
	HUSK=$STAGE/husk-2cpus OMPI_COMM_WORLD_LOCAL_RANK=0 OMPI_COMM_WORLD_LOCAL_SIZE=2 \
		run_husk run --placement=auto --join "placement-$$" "$IMG" -- /bin/sh -c '
		grep Cpus_allowed_list /proc/self/status
		for d in /proc/[0-9]*; do
			[ "$(cat $d/comm 2>/dev/null)" = husk-session ] || continue
			awk -v u="$(id -u)" "/^Uid:/ { ok = \$2 == u } /^Cpus_allowed_list:/ { c = \$2 }
				END { if (ok) print \"server \" c }" $d/status
		done'
	want_status 0
	want_re "^Cpus_allowed_list:[[:space:]]+$c0\$"
	want_re "^server ($c0,$c1|$c0-$c1)\$"
	case_end

	case_begin "this machine: the cpuset already given is respected (1 CPU, 2 ranks)"
	for r in 0 1; do
		HUSK=$STAGE/husk-1cpu OMPI_COMM_WORLD_LOCAL_RANK=$r OMPI_COMM_WORLD_LOCAL_SIZE=2 \
			run_husk run --placement=auto "$IMG" -- /bin/sh -c 'grep Cpus_allowed_list /proc/self/status'
		want_status 0
		want_re "^Cpus_allowed_list:[[:space:]]+$c1\$"
	done
	case_end
else
	case_skip "this machine: real binding" "needs 2 CPUs, this test has $ALLOWED"
fi

# ---- errors --------------------------------------------------------------------

case_begin "--placement=auto with no launcher: one clear error, nothing left"
leftover_baseline
run_husk run --placement=auto "$IMG" -- /bin/true
want_status 125
want_husk_error
want_re "cannot tell this process's local rank.*OMPI_COMM_WORLD_LOCAL_RANK.*SLURM_LOCALID" "$ERR"
check_leftovers
case_end

case_begin "--placement=auto with a local rank beyond the size"
OMPI_COMM_WORLD_LOCAL_RANK=4 OMPI_COMM_WORLD_LOCAL_SIZE=4 run_husk run --placement=auto "$IMG" -- /bin/true
want_status 125
want_husk_error
want_re "OMPI_COMM_WORLD_LOCAL_RANK='4'" "$ERR"
case_end

case_begin "--placement with a bad value, and none"
run_husk run --placement=always "$IMG" -- /bin/true
want_status 125
want_re "--placement 'always': want auto or none" "$ERR"
run_husk run --placement=none "$IMG" -- /probe env HUSK_PLACEMENT
want_status 0
want_line "HUSK_PLACEMENT<unset>"
case_end

case_begin "--placement=auto with HWLOC_XMLFILE missing: one clear error"
HWLOC_XMLFILE=$STAGE/nonexistent.xml OMPI_COMM_WORLD_LOCAL_RANK=0 OMPI_COMM_WORLD_LOCAL_SIZE=1 \
	run_husk run --placement=auto "$IMG" -- /bin/true
want_status 125
want_husk_error
want_re "^husk: placement: HWLOC_XMLFILE=" "$ERR"
case_end

case_begin "--placement=auto without the husk-place helper: one clear error"
mkdir -p "$STAGE/lonely"
cp "$HUSK" "$STAGE/lonely/husk"
HUSK=$STAGE/lonely/husk OMPI_COMM_WORLD_LOCAL_RANK=0 OMPI_COMM_WORLD_LOCAL_SIZE=1 \
	run_husk run --placement=auto "$IMG" -- /bin/true
want_status 125
want_husk_error
want_re "cannot run '.*husk-place'.*reinstall husk" "$ERR"
case_end

done_testing
