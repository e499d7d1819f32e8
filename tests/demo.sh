#!/bin/sh
# One command for a fresh Debian 12 machine: install dependencies, build husk,
# build a small demo image, and run a demo job inside it as an ordinary user.
set -eu
cd "$(dirname "$0")/.."
tests/deps.sh
tests/build.sh
user=${HUSK_DEMO_USER:-husk-demo}
if [ "$(id -u)" -eq 0 ]; then
	id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
	chmod 0666 /dev/fuse   # what Debian's fuse3 package normally sets
	run_as() { setpriv --reuid="$user" --regid="$user" --init-groups env HOME="$(getent passwd "$user" | cut -d: -f6)" "$@"; }
else
	run_as() { "$@"; }
fi
demo=$(mktemp -d /tmp/husk-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT INT TERM
cp bin/husk tests/probe/probe "$demo/"
cp images/tiny/build.sh "$demo/build-image.sh"
chmod -R a+rX "$demo"
chown -R "$user" "$demo" 2>/dev/null || true
cd "$demo"
echo "== building the demo image (busybox + a probe) as $user"
run_as bash ./build-image.sh "$demo/img" "$demo/probe" >/dev/null
ls -l "$demo/img/tiny.sqfs"
echo "== husk run tiny.sqfs -- a job: identity, read-only root, a computation"
run_as ./husk run "$demo/img/tiny.sqfs" -- /bin/sh -c '
	echo "inside: $(id)  HUSK_CONTAINER=$HUSK_CONTAINER"
	echo "root filesystem: $(grep " / " /proc/mounts | cut -d" " -f3,4 | cut -d, -f1)"
	touch /usr/x 2>/dev/null && echo "root is writable?!" || echo "the image is read-only, as it should be"
	i=0; s=0; while [ $i -lt 20000 ]; do s=$((s+i)); i=$((i+1)); done; echo "sum 0..19999 = $s"
	/probe caps | grep -E "CapEff|NoNewPrivs"'
echo "== demo finished: exit status $?"
