#!/bin/sh
# One command for a fresh Debian 12 machine: install dependencies, build husk,
# build a small demo image with husk build, and run a demo job inside it, all
# as an ordinary user.
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
cp bin/husk bin/husk-build tests/probe/probe "$demo/"
mkdir "$demo/tiny-image"
cp images/tiny/build.sh images/tiny/recipe "$demo/tiny-image/"
chmod -R a+rX "$demo"
chown -R "$user" "$demo" 2>/dev/null || true
cd "$demo"
echo "== building a base tree (busybox + a probe) as $user"
run_as bash ./tiny-image/build.sh "$demo/img" "$demo/probe" "$demo/husk" >/dev/null
cat >recipe <<'EOF'
# The demo image: the busybox tree, a job script, metadata.
FROM img/tiny
ENV GREETING="hello from an image made by husk build"
WORKDIR /opt/demo
RUN printf '%s\n' 'i=0; s=0; while [ $i -lt 20000 ]; do s=$((s+i)); i=$((i+1)); done' \
        'echo "$GREETING: sum 0..19999 = $s"' > job.sh && chown 0:0 job.sh
LABEL org.example.demo=yes
CMD ["/bin/sh", "/opt/demo/job.sh"]
EOF
chown "$user" recipe 2>/dev/null || true
echo "== husk build recipe demo.sqfs (unprivileged; RUN under root emulation)"
out=$(run_as ./husk build -q recipe demo.sqfs)
echo "$out"
digest=${out#* }
echo "== husk inspect demo.sqfs"
run_as ./husk inspect demo.sqfs | head -n 12
echo "== husk run demo.sqfs@$digest: identity, read-only root, the job"
run_as ./husk run "demo.sqfs@$digest" -- /bin/sh -c '
	echo "inside: $(id)  HUSK_CONTAINER=$HUSK_CONTAINER  cwd=$(pwd)"
	echo "root filesystem: $(grep " / " /proc/mounts | cut -d" " -f3,4 | cut -d, -f1)"
	touch /usr/x 2>/dev/null && echo "root is writable?!" || echo "the image is read-only, as it should be"
	/probe caps | grep -E "CapEff|NoNewPrivs"'
echo "== husk run demo.sqfs (no command: the image's CMD)"
run_as ./husk run demo.sqfs
echo "== demo finished: exit status $?"
