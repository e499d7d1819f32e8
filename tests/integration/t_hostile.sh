#!/bin/bash
# Hostile images: symlinks in the image (/tmp -> /etc, /home -> /, /dev ->
# ../../.., /evil -> ../../../../, /abs -> /, /loop -> loop, /etc/hosts ->
# /etc/shadow, ...) must be resolved inside the image.  husk may run the
# command or refuse cleanly (125 and one line), but nothing outside the image
# and the stage may be created or overmounted: the host's /, /etc, /tmp, the
# user's HOME and the mount table stay as they were.
. "$(dirname "$0")/lib.sh"

HSRC=$STAGE/hsrc
mkdir -p "$HSRC"
echo "hostile-src" >"$HSRC/file"

# Snapshot of what a mount or mkdir that followed a symlink out would change.
# Names, types and inodes, not times: other users of the machine touch /tmp.
snapshot() {
	{
		echo "== /"
		find / -mindepth 1 -maxdepth 1 -printf '%p %y %i\n' 2>/dev/null | sort
		echo "== /etc"
		find /etc -mindepth 1 -maxdepth 1 -printf '%p %y %i\n' 2>/dev/null | sort
		echo "== HOME"
		find "$HOME" -xdev -path "$STAGE" -prune -o -printf '%p %y %i %s %T@\n' 2>/dev/null | sort
		echo "== own /tmp entries"
		find /tmp -mindepth 1 -maxdepth 1 -user "$MY_UID" -printf '%p %y %i\n' 2>/dev/null | sort
		echo "== mount points"
		awk '{ print $5 }' /proc/self/mountinfo | sort
	} >"$1"
}

# Paths a naive launcher would create by following the image's symlinks.
ESCAPES="/pwned-$$ /tmp/pwned-tmp-$$ $HOME/pwned-evil-$$ $HOME/pwned-abs-$$ $HOME/pwned-home-$$ /etc/pwned-tmp-$$"

# husk may succeed or refuse, nothing else (no crash, no hang, no odd status).
want_ok_or_refused() {
	case $STATUS in
	0) ;;
	125) want_husk_error ;;
	*) case_fail "exit status $STATUS, want 0 or a clean 125" ;;
	esac
}

snapshot "$STAGE/before"

# Each case runs twice: on this kernel, and as on a kernel before 5.2
# (seccomp makes openat2 and the new mount API fail with ENOSYS) so that
# husk's own component walk and its mount(2) fallbacks do the work.
HUSK_OPENAT2=$HUSK
for walk in openat2 fallback; do
for kind in $KINDS; do
	case $kind in
	dir) img=$HOSTILE_DIR ;;
	sqfs) img=$HOSTILE_SQFS ;;
	esac
	if [ $walk = fallback ]; then HUSK=$HUSK_OLD_KERNEL; else HUSK=$HUSK_OPENAT2; fi
	kind="$kind, $walk"

	case_begin "hostile image: a plain run succeeds or fails cleanly [$kind]"
	run_husk run "$img" -- /probe ids
	want_ok_or_refused
	[ "$STATUS" != 0 ] || want_line "uid=$MY_UID"
	case_end

	case_begin "hostile image: /etc/hosts -> /etc/shadow does not expose the host's shadow [$kind]"
	run_husk run "$img" -- sh -c 'cat /etc/hosts /etc/resolv.conf /etc/shadow /etc/gshadow 2>/dev/null; true'
	want_ok_or_refused
	want_no_re '^root:[^:]*:[0-9]*:[0-9]*:[0-9]*:' # a shadow line
	case_end

	case_begin "hostile image: -b through /evil (../../../../) [$kind]"
	run_husk run -b "$HSRC:/evil/pwned-$$" "$img" -- cat "/evil/pwned-$$/file"
	want_ok_or_refused
	[ "$STATUS" != 0 ] || want_line "hostile-src"
	case_end

	case_begin "hostile image: -b through /evil into HOME, with --no-home [$kind]"
	run_husk run --no-home -b "$HSRC:/evil$HOME/pwned-evil-$$" "$img" -- /bin/true
	want_ok_or_refused
	case_end

	case_begin "hostile image: -b through /abs (-> /) into HOME, with --no-home [$kind]"
	run_husk run --no-home -b "$HSRC:/abs$HOME/pwned-abs-$$" "$img" -- /bin/true
	want_ok_or_refused
	case_end

	case_begin "hostile image: -b through /home (-> /) into HOME, with --no-home [$kind]"
	run_husk run --no-home -b "$HSRC:/home$HOME/pwned-home-$$" "$img" -- /bin/true
	want_ok_or_refused
	case_end

	case_begin "hostile image: -b through /tmp (-> /etc) [$kind]"
	run_husk run -b "$HSRC:/tmp/pwned-tmp-$$" "$img" -- /bin/true
	want_ok_or_refused
	case_end

	case_begin "hostile image: -b through a symlink loop [$kind]"
	run_husk run -b "$HSRC:/loop/x" "$img" -- /bin/true
	want_ok_or_refused
	case_end

	case_begin "hostile image: --cwd through /evil stays in the image [$kind]"
	run_husk run --cwd /evil "$img" -- sh -c 'ls -a; /probe cwd'
	want_ok_or_refused
	# The image's root has /probe; the host's root has none.
	[ "$STATUS" != 0 ] || want_line "probe"
	case_end

	case_begin "hostile image: --writable-tmpfs with the bind tricks [$kind]"
	run_husk run --writable-tmpfs --no-home -b "$HSRC:/evil$HOME/pwned-evil-$$" "$img" -- \
		/probe write "/abs$HOME/pwned-abs-$$"
	want_ok_or_refused
	case_end

	case_begin "hostile image: nothing created outside the image [$kind]"
	for p in $ESCAPES; do
		want_true "$p was created on the host" test ! -e "$p"
	done
	snapshot "$STAGE/after"
	if ! cmp -s "$STAGE/before" "$STAGE/after"; then
		case_fail "the host's /, /etc, HOME, /tmp or mount table changed:"
		diff "$STAGE/before" "$STAGE/after" | head -n 20 | sed 's/^/#   /'
	fi
	check_leftovers
	case_end
done
done
HUSK=$HUSK_OPENAT2

for p in $ESCAPES; do
	rm -rf "$p" 2>/dev/null
done
done_testing
