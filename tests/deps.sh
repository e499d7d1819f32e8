#!/bin/sh
# Install what husk needs to build and test on Debian 12 (run as root).
# Build: compiler, autotools, the libraries configure looks for (and the
# static archives of squashfuse's decompressors, linked into husk).
# Tests: busybox-static and squashfs-tools for the test images, fuse3 for
# /dev/fuse, util-linux's setpriv to run tests as an ordinary user, umoci
# (and skopeo, for Docker archives) to make OCI image layouts for the husk
# build tests, mmdebstrap and uidmap for FROM debian:SUITE (unprivileged
# Debian bootstraps), jq to read the JSON of husk inspect --json and of
# provenance records, openmpi-bin for the host mpirun of the MPI tests,
# hwloc (lstopo) to write the fake topologies of the placement tests;
# slurmctld, slurmd, slurm-client and munge for the test clusters of
# tests/slurm/cluster, iproute2 for their namespaced network; libslurm-dev
# (slurm/spank.h) for the Slurm plugin spank_husk.so.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config
      libsquashfuse-dev libfuse3-dev fuse3 libcap-dev libhwloc-dev uuid-dev libdeflate-dev
      zlib1g-dev liblzma-dev liblzo2-dev liblz4-dev libzstd-dev
      libarchive-dev libjson-c-dev libyaml-dev libssl-dev nettle-dev
      squashfs-tools busybox-static util-linux procps umoci skopeo jq
      mmdebstrap uidmap openmpi-bin hwloc slurmctld slurmd slurm-client munge iproute2
      libslurm-dev"
if [ "$(id -u)" -ne 0 ]; then
	echo "tests/deps.sh: run as root (it installs Debian packages): sudo $0" >&2
	exit 1
fi
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "tests/deps.sh: installing:$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
