#!/bin/bash
# GPUs and CDI devices without the hardware: a fake host tree (HUSK_HOST_ROOT)
# with stand-in device nodes (regular files that say which GPU they are),
# /proc/driver/nvidia/gpus entries whose minor numbers are not in bus order,
# a real shared library with the soname libcuda.so.1, a fake nvidia-smi,
# AMD's KFD topology and CDI specs. The checks are the decisions: which
# device nodes can be opened inside, what the visibility variables become,
# which libraries and programs are there, which errors are given.
. "$(dirname "$0")/lib.sh"

trap 'kill_pids $(jobs -p) 2>/dev/null' EXIT

ROOT=$STAGE/host
NOGPU=$STAGE/nogpu
mkdir -p "$NOGPU/dev" "$NOGPU/proc"

# NVIDIA: index (bus order) -> minor: 0->0, 1->1, 2->3, 3->2.
mkdir -p "$ROOT/dev/nvidia-caps" "$ROOT/usr/lib/x86_64-linux-gnu" "$ROOT/usr/bin" \
	"$ROOT/etc/cdi" "$ROOT/var/run/cdi" "$ROOT/opt/fpga/lib" "$ROOT/dev/dri" \
	"$ROOT/etc/libibverbs.d" "$ROOT/dev/infiniband"
buses=(0000:0a:00.0 0000:0b:00.0 0000:0c:00.0 0000:0d:00.0)
minors=(0 1 3 2)
for i in 0 1 2 3; do
	d=$ROOT/proc/driver/nvidia/gpus/${buses[$i]}
	mkdir -p "$d"
	printf 'Model: \t\t Fake GPU\nGPU UUID: \t GPU-%s%s%s-fake\nDevice Minor: \t %s\nBus Location: \t %s\n' \
		"$i" "$i" "$i" "${minors[$i]}" "${buses[$i]}" >"$d/information"
	echo "fake nvidia${minors[$i]}" >"$ROOT/dev/nvidia${minors[$i]}"
done
for n in nvidiactl nvidia-uvm nvidia-uvm-tools nvidia-modeset fpga0 kfd; do
	echo "fake $n" >"$ROOT/dev/$n"
done
echo "fake uverbs0" >"$ROOT/dev/infiniband/uverbs0"
echo "driver mlx5" >"$ROOT/etc/libibverbs.d/mlx5.driver"
# A real library with a real soname, as the driver's would be.
# (it calls into glibc, as the real one does: it needs the image to have one)
printf '#include <stdlib.h>\nint cuInit(unsigned flags) { return getenv("CUDA_FAKE_FAIL") ? -1 : (int)flags + 42; }\n' \
	>"$STAGE/cuda.c"
if ! gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$ROOT/usr/lib/x86_64-linux-gnu/libcuda.so.550.54" \
	"$STAGE/cuda.c"; then
	echo "not ok - fixture: cannot compile the fake libcuda"
	exit 1
fi
ln -s libcuda.so.550.54 "$ROOT/usr/lib/x86_64-linux-gnu/libcuda.so.1"
# The host's linker cache, made by the real ldconfig (chroot needs a user
# namespace of our own).
echo /usr/lib/x86_64-linux-gnu >"$ROOT/etc/ld.so.conf"
if ! unshare -r /sbin/ldconfig -r "$ROOT" 2>"$STAGE/ldconfig.err"; then
	echo "not ok - fixture: ldconfig -r failed: $(cat "$STAGE/ldconfig.err")"
	exit 1
fi
# An image with glibc (the tiny image plus the host's libc and loader) and a
# program that calls the driver library.
GIMG=$STAGE/gimg
cp -a "$IMG_DIR" "$GIMG"
mkdir -p "$GIMG/lib/x86_64-linux-gnu" "$GIMG/lib64" "$GIMG/usr/bin"
cp -L /lib/x86_64-linux-gnu/libc.so.6 "$GIMG/lib/x86_64-linux-gnu/"
cp -L /lib64/ld-linux-x86-64.so.2 "$GIMG/lib64/"
printf '#include <stdio.h>\nint cuInit(unsigned);\nint main(void) { printf("cuInit=%%d\\n", cuInit(0)); return 0; }\n' \
	>"$STAGE/cudacheck.c"
if ! gcc -o "$GIMG/usr/bin/cudacheck" "$STAGE/cudacheck.c" \
	"$ROOT/usr/lib/x86_64-linux-gnu/libcuda.so.550.54"; then
	echo "not ok - fixture: cannot compile the CUDA check program"
	exit 1
fi
printf '#!/bin/sh\necho "fake nvidia-smi: CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"\n' \
	>"$ROOT/usr/bin/nvidia-smi"
chmod 0755 "$ROOT/usr/bin/nvidia-smi"
LIBSUM=$(md5sum <"$ROOT/usr/lib/x86_64-linux-gnu/libcuda.so.550.54" | cut -d' ' -f1)
# AMD: KFD node 0 is the CPU; GPU 0 is renderD129, GPU 1 renderD128.
for m in 128 129; do echo "fake renderD$m" >"$ROOT/dev/dri/renderD$m"; done
t=$ROOT/sys/class/kfd/kfd/topology/nodes
mkdir -p "$t/0" "$t/1" "$t/2"
echo 0 >"$t/0/gpu_id"; echo "cpu_cores_count 4" >"$t/0/properties"
echo 1111 >"$t/1/gpu_id"; echo "drm_render_minor 129" >"$t/1/properties"
echo 2222 >"$t/2/gpu_id"; echo "drm_render_minor 128" >"$t/2/properties"
# CDI: an FPGA card with a mount, an env and a hook; a GPU named by minor.
echo "fpga lib" >"$ROOT/opt/fpga/lib/libfpga.so.1"
cat >"$ROOT/etc/cdi/fpga.yaml" <<'EOF'
cdiVersion: "0.6.0"
kind: example.com/fpga
devices:
  - name: f0
    containerEdits:
      env: [FPGA_DEVICE=f0]
      deviceNodes:
        - path: /dev/fpga0
      mounts:
        - hostPath: /opt/fpga/lib
          containerPath: /opt/fpga
          options: [ro, nosuid, nodev, bind]
containerEdits:
  hooks:
    - hookName: createContainer
      path: /usr/bin/fpga-hook
EOF
cat >"$ROOT/var/run/cdi/nvidia.json" <<'EOF'
{"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
 "containerEdits": {"deviceNodes": [{"path": "/dev/nvidiactl"}]},
 "devices": [{"name": "2", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia3"}]}}]}
EOF
export HUSK_HOST_ROOT=$ROOT

# The GPU stand-ins that can be read inside, one name a line.
READ_GPUS='for f in /dev/nvidia0 /dev/nvidia1 /dev/nvidia2 /dev/nvidia3; do cat $f 2>/dev/null; done; true'

for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "$kind: CUDA_VISIBLE_DEVICES=1,3: only those GPUs (minors 1 and 2), renumbered 0,1"
	CUDA_VISIBLE_DEVICES=1,3 run_husk run --gpu "$img" -- /bin/sh -c \
		"$READ_GPUS; cat /dev/nvidiactl; echo CUDA=\$CUDA_VISIBLE_DEVICES"
	want_status 0
	want_line "fake nvidia1"
	want_line "fake nvidia2"
	want_no_line "fake nvidia0"
	want_no_line "fake nvidia3"
	want_line "fake nvidiactl"
	want_line "CUDA=0,1"
	case_end
done

case_begin "hidden GPU nodes cannot be opened, even by name"
CUDA_VISIBLE_DEVICES=1 run_husk run --gpu "$IMG_SQFS" -- /bin/sh -c \
	'cat /dev/nvidia0 || echo refused; cat /dev/nvidia1'
want_status 0
want_line "refused"
want_line "fake nvidia1"
case_end

case_begin "the order asked for is kept: CUDA_VISIBLE_DEVICES=3,1 becomes 1,0"
CUDA_VISIBLE_DEVICES=3,1 run_husk run --nv "$GIMG" -- /bin/sh -c 'echo CUDA=$CUDA_VISIBLE_DEVICES'
want_status 0
want_line "CUDA=1,0"
case_end

case_begin "--nv: the driver library (real soname, from the linker cache) works inside; nvidia-smi"
run_husk run --nv "$GIMG" -- /bin/sh -c 'cudacheck; md5sum </.husk-host/lib/libcuda.so.1;
	echo LD=$LD_LIBRARY_PATH; nvidia-smi; echo x >/.husk-host/lib/libcuda.so.1 || echo read-only'
want_status 0
want_line "cuInit=42"
want_line "$LIBSUM  -"
want_re '^LD=/\.husk-host/lib(:|$)'
want_line "fake nvidia-smi: CUDA_VISIBLE_DEVICES="
want_line "read-only"
case_end

case_begin "a site gpu profile replaces the built-in list (its libraries, programs, paths, env)"
mkdir -p "$ROOT/etc/OpenCL/vendors"
echo "libcuda.so.1" >"$ROOT/etc/OpenCL/vendors/nvidia.icd"
cat >"$STAGE/site.conf" <<'EOF2'
[profile nvidia]
kind = gpu
flavour = nvidia
library = libcuda.so.1
path = /etc/OpenCL/vendors/nvidia.icd
env = NVIDIA_DRIVER_FROM=site-profile
EOF2
run_husk run --config "$STAGE/site.conf" --nv "$GIMG" -- /bin/sh -c \
	'cudacheck; cat /etc/OpenCL/vendors/nvidia.icd; echo FROM=$NVIDIA_DRIVER_FROM; ls /.husk-host'
want_status 0
want_line "cuInit=42"
want_line "libcuda.so.1"
want_line "FROM=site-profile"
want_no_line "bin"
case_end

case_begin "gpu = auto in husk.conf: GPUs without --gpu; --gpu=none turns it off"
printf '[run]\ngpu = auto\n' >"$STAGE/auto.conf"
CUDA_VISIBLE_DEVICES=1 run_husk run --config "$STAGE/auto.conf" "$IMG_SQFS" -- /bin/sh -c \
	"$READ_GPUS; echo CUDA=\$CUDA_VISIBLE_DEVICES"
want_status 0
want_line "fake nvidia1"
want_no_re '^fake nvidia[023]$'
want_line "CUDA=0"
CUDA_VISIBLE_DEVICES=1 run_husk run --config "$STAGE/auto.conf" --gpu=none "$IMG_SQFS" -- /bin/sh -c \
	'echo CUDA=$CUDA_VISIBLE_DEVICES'
want_status 0
want_line "CUDA=1"
case_end

case_begin "--nv on an image without glibc: refused, the host's libcuda cannot run there"
run_husk run --nv "$IMG_SQFS" -- /bin/true
want_status 125
want_husk_error
want_re "has no glibc" "$ERR"
case_end

case_begin "--gpu (auto) on an image without glibc: the GPUs, no libraries, a warning"
CUDA_VISIBLE_DEVICES=2 run_husk run --gpu "$IMG_SQFS" -- /bin/sh -c \
	"$READ_GPUS; ls /.husk-host 2>/dev/null; echo CUDA=\$CUDA_VISIBLE_DEVICES"
want_status 0
want_line "fake nvidia3"
want_no_re '^fake nvidia[012]$'
want_no_re 'lib'
want_line "CUDA=0"
want_re "no glibc.*driver libraries are not" "$ERR"
case_end

case_begin "SLURM_STEP_GPUS=2 (no CUDA variable): GPU 2 (minor 3) only, CUDA_VISIBLE_DEVICES=0"
SLURM_STEP_GPUS=2 run_husk run --gpu "$IMG_SQFS" -- /bin/sh -c \
	"$READ_GPUS; echo CUDA=\$CUDA_VISIBLE_DEVICES"
want_status 0
want_line "fake nvidia3"
want_count 1 "fake nvidia3"
want_no_re '^fake nvidia[012]$'
want_line "CUDA=0"
case_end

case_begin "Slurm with ConstrainDevices: SLURM_STEP_GPUS=1,3 and CUDA_VISIBLE_DEVICES=1"
SLURM_STEP_GPUS=1,3 CUDA_VISIBLE_DEVICES=1 run_husk run --gpu "$IMG_SQFS" -- /bin/sh -c "$READ_GPUS"
want_status 0
want_line "fake nvidia2"
want_no_re '^fake nvidia[013]$'
case_end

case_begin "--dry-run lists the GPUs, the hidden nodes and the host pieces"
CUDA_VISIBLE_DEVICES=0 run_husk run --dry-run --gpu "$IMG_SQFS" -- /bin/true
want_status 0
want_re '^  gpu +/dev/nvidia0  NVIDIA GPU 0 0000:0a:00\.0 GPU-000-fake, device 0 inside$'
want_re '^  hidden +/dev/nvidia3  NVIDIA GPU 2 0000:0c:00\.0: not visible \(CUDA_VISIBLE_DEVICES=0\)$'
want_re '^  \(hidden\) +-> /dev/nvidia1 +masked'
want_re '^  \(hidden\) +-> /proc/driver/nvidia/gpus/0000:0d:00\.0 +masked'
want_re '^  device +/dev/infiniband/uverbs0  InfiniBand verbs$'
want_line "  CUDA_VISIBLE_DEVICES=0"
case_end

case_begin "the provenance record names the visible GPU, the hidden ones and the CDI device"
CUDA_VISIBLE_DEVICES=2 run_husk run --gpu --device example.com/fpga=f0 --provenance "$STAGE/prov.json" \
	"$IMG_SQFS" -- /bin/true
want_status 0
jq -r '.host_pieces[] | "\(.what) \(.name)"' "$STAGE/prov.json" >"$STAGE/prov.items" 2>&1 ||
	case_fail "jq failed: $(cat "$STAGE/prov.items")"
jq -r '.hidden[]' "$STAGE/prov.json" >"$STAGE/prov.hidden" 2>&1
want_line "gpu /dev/nvidia3" "$STAGE/prov.items"
want_line "hidden /dev/nvidia0" "$STAGE/prov.items"
want_line "cdi example.com/fpga=f0" "$STAGE/prov.items"
want_line "device /dev/fpga0" "$STAGE/prov.items"
want_line "/dev/nvidia1" "$STAGE/prov.hidden"
want_line "/proc/driver/nvidia/gpus/0000:0a:00.0" "$STAGE/prov.hidden"
want_no_line "/dev/nvidia3" "$STAGE/prov.hidden"
case_end

case_begin "a bad CUDA_VISIBLE_DEVICES is refused with one clear line"
CUDA_VISIBLE_DEVICES=7 run_husk run --gpu "$IMG_SQFS" -- /bin/true
want_status 125
want_husk_error
want_re "CUDA_VISIBLE_DEVICES='7': there is no GPU 7: the job may use 4 NVIDIA GPUs" "$ERR"
case_end

case_begin "--gpu=nvidia on a host without GPUs: a clear error"
HUSK_HOST_ROOT=$NOGPU CUDA_VISIBLE_DEVICES=0 run_husk run --gpu=nvidia "$IMG_SQFS" -- /bin/true
want_status 125
want_husk_error
want_re "^husk: --gpu=nvidia: no NVIDIA GPU on this host" "$ERR"
case_end

case_begin "--gpu=auto on a host without GPUs: nothing added, no error"
HUSK_HOST_ROOT=$NOGPU CUDA_VISIBLE_DEVICES=5 run_husk run --gpu=auto "$GIMG" -- /bin/sh -c \
	'echo CUDA=$CUDA_VISIBLE_DEVICES; echo LD=$LD_LIBRARY_PATH; ls /.husk-host 2>&1 || true'
want_status 0
want_line "CUDA=5"
want_line "LD="
want_no_re 'libcuda'
HUSK_HOST_ROOT=$NOGPU run_husk run --dry-run --gpu "$GIMG" -- /bin/true
want_no_re 'masked'
want_no_re '^  gpu '
case_end

case_begin "--gpu=bogus is a usage error"
run_husk run --gpu=bogus "$IMG_SQFS" -- /bin/true
want_status 125
want_husk_error
want_re "expected auto, nvidia, amd or none" "$ERR"
case_end

case_begin "--rocm: ROCR_VISIBLE_DEVICES=1 leaves renderD128 (KFD order), renumbered 0"
ROCR_VISIBLE_DEVICES=1 HIP_VISIBLE_DEVICES=0 run_husk run --rocm "$GIMG" -- /bin/sh -c \
	'cat /dev/dri/renderD128 /dev/dri/renderD129 /dev/kfd 2>/dev/null;
	 echo ROCR=$ROCR_VISIBLE_DEVICES HIP=$HIP_VISIBLE_DEVICES'
want_status 0
want_line "fake renderD128"
want_no_line "fake renderD129"
want_line "fake kfd"
want_line "ROCR=0 HIP=0"
case_end

case_begin "--device CDI (YAML): device node, env, read-only mount; the hook is skipped with a warning"
run_husk run --device example.com/fpga=f0 "$IMG_SQFS" -- /bin/sh -c \
	'cat /dev/fpga0; echo FPGA=$FPGA_DEVICE; cat /opt/fpga/libfpga.so.1;
	 echo x >/opt/fpga/new 2>/dev/null || echo read-only'
want_status 0
want_line "fake fpga0"
want_line "FPGA=f0"
want_line "fpga lib"
want_line "read-only"
want_re "fpga\.yaml.*hook.*skipped" "$ERR"
case_end

case_begin "--device nvidia.com/gpu=2 (JSON in /var/run/cdi): that GPU only, no --gpu needed"
CUDA_VISIBLE_DEVICES=2 run_husk run --device nvidia.com/gpu=2 "$IMG_SQFS" -- /bin/sh -c \
	"$READ_GPUS; cat /dev/nvidiactl; echo CUDA=\$CUDA_VISIBLE_DEVICES"
want_status 0
want_line "fake nvidia3"
want_no_re '^fake nvidia[012]$'
want_line "fake nvidiactl"
want_line "CUDA=0"
case_end

case_begin "--device: an unknown CDI device or a malformed name is a clear error"
run_husk run --device example.com/fpga=f9 "$IMG_SQFS" -- /bin/true
want_status 125
want_husk_error
want_re "^husk: CDI device 'example.com/fpga=f9' not found: the specs of kind 'example.com/fpga' have no device 'f9'" "$ERR"
run_husk run --device /dev/fpga0 "$IMG_SQFS" -- /bin/true
want_status 125
want_husk_error
want_re "^husk: --device '/dev/fpga0': not a CDI device name; write vendor.com/class=name" "$ERR"
case_end

case_begin "--device: a broken spec is named in the warning, and in the error when nothing matches"
echo "cdiVersion: [" >"$ROOT/etc/cdi/broken.yaml"
run_husk run --device example.com/fpga=f0 "$IMG_SQFS" -- /bin/true
want_status 0
want_re "CDI spec '.*/etc/cdi/broken\.yaml': YAML error at line" "$ERR"
run_husk run --device other.org/x=y "$IMG_SQFS" -- /bin/true
want_status 125
want_re "no CDI spec of kind 'other.org/x'.*broken\.yaml" "$ERR"
rm -f "$ROOT/etc/cdi/broken.yaml"
case_end

# Each member of a session does its own binds: two ranks of one session
# with different CUDA_VISIBLE_DEVICES see different GPUs. Each waits for
# the other to be running before it reads, so both are in the session at
# once.
TAG=gpu$$-$RANDOM
for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "$kind: two concurrent members of one session (--join) see their own GPUs"
	rm -f "$STAGE"/rank*.ready "$STAGE"/rank*.out "$STAGE"/rank*.err
	for r in 0 1; do
		other=$((1 - r))
		cuda=$([ "$r" = 0 ] && echo 0 || echo 3)
		( CUDA_VISIBLE_DEVICES=$cuda timeout -k 5 60 "$HUSK" run -v --gpu --join="$TAG-$kind" "$img" -- \
			/bin/sh -c "touch $STAGE/rank$r.ready; i=0; while [ ! -e $STAGE/rank$other.ready ] && [ \$i -lt 400 ]; do sleep 0.05; i=\$((i+1)); done;
			$READ_GPUS; echo CUDA=\$CUDA_VISIBLE_DEVICES; readlink /proc/self/ns/user" \
			</dev/null >"$STAGE/rank$r.out" 2>"$STAGE/rank$r.err"; echo $? >"$STAGE/rank$r.st" ) &
	done
	wait
	for r in 0 1; do
		[ "$(cat "$STAGE/rank$r.st")" = 0 ] || case_fail "rank $r: status $(cat "$STAGE/rank$r.st")"
	done
	want_line "fake nvidia0" "$STAGE/rank0.out"
	want_no_re '^fake nvidia[123]$' "$STAGE/rank0.out"
	want_line "fake nvidia2" "$STAGE/rank1.out"
	want_no_re '^fake nvidia[013]$' "$STAGE/rank1.out"
	want_line "CUDA=0" "$STAGE/rank0.out"
	want_line "CUDA=0" "$STAGE/rank1.out"
	ns0=$(tail -n 1 "$STAGE/rank0.out"); ns1=$(tail -n 1 "$STAGE/rank1.out")
	[ -n "$ns0" ] && [ "$ns0" = "$ns1" ] || case_fail "not one session: user namespaces '$ns0' and '$ns1'"
	grep -q 'joined session' "$STAGE/rank0.err" || case_fail "rank 0 did not join a session"
	case_end
done

# The real host (no HUSK_HOST_ROOT): this machine's own decision.
if [ -e /dev/nvidiactl ] || [ -e /dev/kfd ] || [ -d /proc/driver/nvidia/gpus ]; then
	case_skip "the real host without GPUs: --gpu adds nothing, --nv fails" "this host has GPUs"
else
	case_begin "the real host without GPUs: --gpu adds nothing, --nv fails"
	(unset HUSK_HOST_ROOT; run_husk run --gpu "$IMG_SQFS" -- /bin/sh -c 'echo CUDA=$CUDA_VISIBLE_DEVICES'
	 echo "$STATUS" >"$STAGE/real.st"; cp "$OUT" "$STAGE/real.out")
	[ "$(cat "$STAGE/real.st")" = 0 ] || case_fail "--gpu on the real host: status $(cat "$STAGE/real.st")"
	want_line "CUDA=" "$STAGE/real.out"
	(unset HUSK_HOST_ROOT; run_husk run --nv "$IMG_SQFS" -- /bin/true; echo "$STATUS" >"$STAGE/real.st"
	 cp "$ERR" "$STAGE/real.err")
	[ "$(cat "$STAGE/real.st")" = 125 ] || case_fail "--nv on the real host: status $(cat "$STAGE/real.st")"
	want_re '^husk: --gpu=nvidia: no NVIDIA GPU on this host \(' "$STAGE/real.err"
	case_end
fi

case_begin "nothing is left behind"
check_leftovers 5
case_end

done_testing
