#!/bin/bash
# The host pieces a launch adds to the container, driven by a configuration
# file (HUSK_CONFIG / --config; this machine's husk has no system file, so a
# user file is allowed): [run] binds (read-only, optional when the source is
# missing), variables (after the image's, before --env-file and -e), masked
# paths (a device node made unusable, in a single launch and in a session
# where each member makes its own mounts), and what --dry-run and the
# provenance record say about them.
. "$(dirname "$0")/lib.sh"

export XDG_CACHE_HOME=$STAGE/cache
TAG=conf$$-$RANDOM
SITE=$STAGE/site
mkdir -p "$SITE" "$STAGE/rw"
echo "site-data" >"$SITE/data.txt"
CONF=$STAGE/husk.conf
cat >"$CONF" <<EOF
# a site configuration, as a user file
[run]
bind = $SITE:/site:ro          # read-only, in every container
bind = $STAGE/rw:/site-rw:rw
bind = $STAGE/no-such-dir:/missing
env = SITE_VAR=from-site
env = OVERRIDE_ME=site
hide = /dev/zero
hide = /bin/noexec.sh
hide = /root
hide = /no/such/path
EOF
echo "OVERRIDE_ME=from-env-file" >"$STAGE/envfile"

for kind in $KINDS; do
	img=$(img_of "$kind")

	case_begin "a configured bind is there, read-only [$kind]"
	HUSK_CONFIG=$CONF run_husk run "$img" -- sh -c 'cat /site/data.txt; /probe write /site/new.txt'
	want_status 0
	want_line "site-data"
	want_line "write=EROFS"
	case_end

	case_begin "a configured bind marked rw is writable [$kind]"
	rm -f "$STAGE/rw/out.txt"
	run_husk run --config "$CONF" "$img" -- /probe write /site-rw/out.txt
	want_status 0
	want_line "write=ok"
	want_true "the file did not reach the host" test -e "$STAGE/rw/out.txt"
	case_end

	case_begin "a configured bind whose source is missing is skipped [$kind]"
	run_husk run --config "$CONF" "$img" -- sh -c 'test -e /missing && echo there || echo absent'
	want_status 0
	want_line "absent"
	case_end

	case_begin "configured variables: over the image's, under --env-file and -e [$kind]"
	run_husk run --config "$CONF" "$img" -- /probe env
	want_status 0
	want_line "SITE_VAR=from-site"
	want_line "OVERRIDE_ME=site"
	want_line "IMAGE_VAR=from-image"
	run_husk run --config "$CONF" --env-file "$STAGE/envfile" "$img" -- /probe env
	want_line "OVERRIDE_ME=from-env-file"
	run_husk run --config "$CONF" --env-file "$STAGE/envfile" -e OVERRIDE_ME=cli "$img" -- /probe env
	want_line "OVERRIDE_ME=cli"
	want_line "SITE_VAR=from-site"
	case_end

	case_begin "a hidden device node cannot be used; others still work [$kind]"
	run_husk run --config "$CONF" "$img" -- sh -c \
		'stat -c "%F %a" /dev/zero; head -c 1 /dev/zero >/dev/null && echo zero-readable || echo zero-refused; stat -c %F /dev/null; echo x >/dev/null && echo null-ok'
	want_status 0
	want_line "regular empty file 0"
	want_line "zero-refused"
	want_line "character special file"
	want_line "null-ok"
	# without the configuration, the same command reads it
	run_husk run "$img" -- sh -c 'head -c 1 /dev/zero >/dev/null && echo zero-readable'
	want_line "zero-readable"
	case_end

	case_begin "hidden files and directories of the image; a missing path is ignored [$kind]"
	run_husk run --config "$CONF" "$img" -- sh -c \
		'stat -c "%F %a" /bin/noexec.sh /root; cat /bin/noexec.sh >/dev/null 2>&1 || echo file-refused; ls /root >/dev/null 2>&1 || echo dir-refused; test -e /no/such/path || echo still-missing'
	want_status 0
	want_line "regular empty file 0"
	want_line "directory 0"
	want_line "file-refused"
	want_line "dir-refused"
	want_line "still-missing"
	case_end

	case_begin "--fake-root does not get a hidden device back [$kind]"
	run_husk run --fake-root --config "$CONF" "$img" -- sh -c 'stat -c %F /dev/zero; test "$(head -c 1 /dev/zero | wc -c)" = 0 && echo empty'
	want_status 0
	want_line "regular empty file"
	want_line "empty"
	case_end
done

case_begin "--dry-run shows the configured mounts, masks and the file used"
run_husk run --dry-run --config "$CONF" "$IMG_DIR" -- true
want_status 0
want_re "^  $SITE +-> /site +ro,nosuid,nodev,optional  \[husk\.conf\]$"
want_re "^  \(hidden\) +-> /dev/zero +masked"
want_re "^  config +$CONF  --config or HUSK_CONFIG$"
want_line "  SITE_VAR=from-site"
case_end

jq_ok() { jq -e "$@" >/dev/null; }

if command -v jq >/dev/null; then
	case_begin "the provenance record lists the host pieces and the hidden paths"
	P=$STAGE/prov.jsonl
	rm -f "$P"
	run_husk run --provenance "$P" --config "$CONF" "$IMG_SQFS" -- true
	want_status 0
	rec=$(tail -n 1 "$P")
	want_true "no config item in .host_pieces: $rec" jq_ok --arg c "$CONF" \
		'.host_pieces | any(.what == "config" and .name == $c)' <<<"$rec"
	want_true "the host name is not .host: $rec" jq_ok --arg h "$(hostname)" '.host == $h' <<<"$rec"
	want_true "no /dev/zero in .hidden: $rec" jq_ok '.hidden | index("/dev/zero")' <<<"$rec"
	want_true "no site bind in .binds: $rec" jq_ok --arg s "$SITE" \
		'.binds | any(.src == $s and .dst == "/site" and .ro and .why == "husk.conf")' <<<"$rec"
	want_true "SITE_VAR not in env_changes: $rec" jq_ok '.env_changes.set.SITE_VAR == "from-site"' <<<"$rec"
	case_end
else
	case_skip "the provenance record lists the host pieces" "jq is not installed"
fi

# A session: one user namespace, but each member makes its own mounts, so a
# mask (one rank's view of the GPUs) stays with the member that asked for it.
case_begin "in a session, a mask applies to the member that asked only"
rm -f "$STAGE/go" "$STAGE/a.out" "$STAGE/b.out"
( HUSK_CONFIG= timeout -k 5 30 "$HUSK" run --join="$TAG" "$IMG_SQFS" -- sh -c \
	"while [ ! -e '$STAGE/go' ]; do sleep 0.05; done; stat -c %F /dev/zero; readlink /proc/self/ns/user" \
	</dev/null >"$STAGE/a.out" 2>"$STAGE/a.err" ) &
A=$!
run_husk run --join="$TAG" --config "$CONF" "$IMG_SQFS" -- sh -c \
	"stat -c %F /dev/zero; readlink /proc/self/ns/user; touch '$STAGE/go'"
want_status 0
want_line "regular empty file"
wait "$A"
want_true "the first member failed: $(cat "$STAGE/a.err")" test -s "$STAGE/a.out"
want_line "character special file" "$STAGE/a.out"
ns_a=$(sed -n 2p "$STAGE/a.out")
ns_b=$(sed -n 2p "$OUT")
want_true "members in different user namespaces ($ns_a, $ns_b): no session" test "$ns_a" = "$ns_b"
case_end

case_begin "nothing is left behind"
check_leftovers
case_end

done_testing
