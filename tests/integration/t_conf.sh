#!/bin/bash
# The site configuration: the system file (root-owned, prepared by
# t_conf.root as an admin would), its rules (forbid-bind for --bind and
# HUSK_BIND, image-path), --config / HUSK_CONFIG allowed or refused, file:line
# errors, files refused for who may write them, and husk doctor's check.
#
# The system file of the installed husk is $(sysconfdir)/husk/husk.conf; the
# tests must not write into this machine's /etc, so they run husk-testconf,
# the same husk built to read HUSK_TEST_SYSCONFDIR instead (a test build,
# never installed). One case checks that the real husk ignores that variable.
. "$(dirname "$0")/lib.sh"

export XDG_CACHE_HOME=$STAGE/cache
HUSK_REAL=$HUSK
HUSK=$HUSK_TESTCONF
mkdir -p "$STAGE/mine" "$STAGE/none"
echo "mine" >"$STAGE/mine/file.txt"
# no system file here: HUSK_TEST_SYSCONFDIR=$STAGE/none
export HUSK_TEST_SYSCONFDIR=$STAGE/none HUSK_TEST_DATADIR=$STAGE/none

# --- without root -----------------------------------------------------------

case_begin "no system file: a user file of one's own is used"
printf '[run]\nenv = MINE=1\nbind = %s:/mine:ro\n' "$STAGE/mine" >"$STAGE/user.conf"
run_husk run --config "$STAGE/user.conf" "$IMG_SQFS" -- sh -c 'echo MINE=$MINE; cat /mine/file.txt'
want_status 0
want_line "MINE=1"
want_line "mine"
case_end

case_begin "a world-writable user file is refused"
cp "$STAGE/user.conf" "$STAGE/ww.conf"
chmod 0666 "$STAGE/ww.conf"
run_husk run --config "$STAGE/ww.conf" "$IMG_SQFS" -- true
want_status 125
want_husk_error
want_re "^husk: configuration '$STAGE/ww.conf' is writable by everyone \(mode 0666\): refusing it; chmod o-w" "$ERR"
case_end

case_begin "a user file's syntax error names file:line, and nothing runs"
printf '[run]\nenv = A=1\n\nbind = relative/path\n' >"$STAGE/err.conf"
run_husk run --config "$STAGE/err.conf" "$IMG_SQFS" -- /probe write "$STAGE/ran"
want_status 125
want_husk_error
want_re "^husk: $STAGE/err.conf:4: bind = 'relative/path': the source is not an absolute path" "$ERR"
want_true "the command ran" test ! -e "$STAGE/ran"
case_end

case_begin "a system file owned by the user is refused"
mkdir -p "$STAGE/etc"
printf '[run]\nenv = X=1\n' >"$STAGE/etc/husk.conf"
HUSK_TEST_SYSCONFDIR=$STAGE/etc run_husk run "$IMG_SQFS" -- true
want_status 125
want_husk_error
want_re "^husk: site configuration '$STAGE/etc/husk.conf' is owned by uid $MY_UID, not by root: refusing it.*; as root: chown root:" "$ERR"
case_end

case_begin "the installed husk ignores HUSK_TEST_SYSCONFDIR"
HUSK=$HUSK_REAL HUSK_TEST_SYSCONFDIR=$STAGE/etc run_husk run "$IMG_SQFS" -- echo ran
want_status 0
want_line "ran"
case_end

# --- root-owned files, prepared by t_conf.root ---------------------------------

if [ -z "${ROOT_FIXTURES:-}" ]; then
	case_skip "root-owned site configuration files" "${ROOT_SKIP:-no fixtures}"
	case_begin "nothing is left behind"
	check_leftovers
	case_end
	done_testing
fi
FX=$ROOT_FIXTURES
GOOD=$FX/good/husk.conf

for kind in $KINDS; do
	img=$(img_of "$kind")
	case_begin "a root-owned system file: its binds and variables [$kind]"
	HUSK_TEST_SYSCONFDIR=$FX/good run_husk run "$img" -- sh -c 'cat /sitedata/hello.txt; echo SITE_CONF=$SITE_CONF'
	want_status 0
	want_line "site-data"
	want_line "SITE_CONF=good"
	case_end
done

case_begin "--dry-run names the system file"
HUSK_TEST_SYSCONFDIR=$FX/good run_husk run --dry-run "$IMG_DIR" -- true
want_status 0
want_re "^  config +$GOOD  site$"
want_re "^  $FX/sitedata +-> /sitedata +ro,.*\[husk\.conf\]$"
case_end

case_begin "forbid-bind refuses -b at, below and over a forbidden path"
for dst in /forbidden /forbidden/sub /opt; do
	HUSK_TEST_SYSCONFDIR=$FX/good run_husk run -b "$STAGE/mine:$dst" "$IMG_SQFS" -- /probe write "$STAGE/ran"
	want_status 125
	want_husk_error
	want_re "^husk: bind '$STAGE/mine' on '$dst' \(--bind\): the site configuration forbids binds (at or below|that cover) '(/forbidden|/opt/site)' \(forbid-bind at $GOOD:[56]\); choose another destination" "$ERR"
done
want_true "a command ran" test ! -e "$STAGE/ran"
case_end

case_begin "forbid-bind applies to HUSK_BIND too"
HUSK_BIND=$STAGE/mine:/forbidden HUSK_TEST_SYSCONFDIR=$FX/good run_husk run "$IMG_SQFS" -- true
want_status 125
want_husk_error
want_re "\(HUSK_BIND\): the site configuration forbids binds at or below '/forbidden' \(forbid-bind at $GOOD:5\)" "$ERR"
case_end

case_begin "a bind beside a forbidden path is allowed"
HUSK_TEST_SYSCONFDIR=$FX/good run_husk run -b "$STAGE/mine:/opt/site2" "$IMG_SQFS" -- cat /opt/site2/file.txt
want_status 0
want_line "mine"
case_end

case_begin "image-path: an image elsewhere is refused, a link to an allowed one is not"
cp "$IMG_SQFS" "$STAGE/copy.sqfs"
HUSK_TEST_SYSCONFDIR=$FX/good run_husk run "$STAGE/copy.sqfs" -- true
want_status 125
want_husk_error
want_re "^husk: image '$STAGE/copy.sqfs' lies outside the places the site configuration allows for images \(image-path: $(dirname "$IMG_SQFS"); $GOOD:7\); put the image below one of them" "$ERR"
ln -sf "$IMG_SQFS" "$STAGE/link.sqfs"
HUSK_TEST_SYSCONFDIR=$FX/good run_husk run "$STAGE/link.sqfs" -- echo ran
want_status 0
want_line "ran"
case_end

case_begin "--config and HUSK_CONFIG are refused where the site does not allow them"
HUSK_TEST_SYSCONFDIR=$FX/good run_husk run --config "$STAGE/user.conf" "$IMG_SQFS" -- true
want_status 125
want_husk_error
want_re "^husk: configuration '$STAGE/user.conf' \(--config or HUSK_CONFIG\) is not allowed here: the site configuration '$GOOD' does not say 'allow-user-config = yes'" "$ERR"
HUSK_CONFIG=$STAGE/user.conf HUSK_TEST_SYSCONFDIR=$FX/good run_husk run "$IMG_SQFS" -- true
want_status 125
want_husk_error
case_end

case_begin "allow-user-config = yes: --config replaces the site file; includes apply"
HUSK_TEST_SYSCONFDIR=$FX/allow run_husk run "$IMG_SQFS" -- sh -c 'echo "FROM_INCLUDE=$FROM_INCLUDE MINE=$MINE"'
want_status 0
want_line "FROM_INCLUDE=yes MINE="
HUSK_TEST_SYSCONFDIR=$FX/allow run_husk run --config "$STAGE/user.conf" "$IMG_SQFS" -- sh -c 'echo "FROM_INCLUDE=$FROM_INCLUDE MINE=$MINE"'
want_status 0
want_line "FROM_INCLUDE= MINE=1"
case_end

case_begin "a syntax error in the system file stops husk run with file:line"
HUSK_TEST_SYSCONFDIR=$FX/bad run_husk run "$IMG_SQFS" -- true
want_status 125
want_husk_error
want_re "^husk: $FX/bad/husk.conf:3: gpu = 'sometimes': unknown value; the values are none\|auto$" "$ERR"
case_end

case_begin "system files that others could write are refused, naming the fix"
HUSK_TEST_SYSCONFDIR=$FX/groupw run_husk run "$IMG_SQFS" -- true
want_status 125
want_husk_error
want_re "'$FX/groupw/husk.conf' is writable by its group \(mode 0664\): refusing it; as root: chmod go-w" "$ERR"
HUSK_TEST_SYSCONFDIR=$FX/worldw run_husk run "$IMG_SQFS" -- true
want_status 125
want_re "'$FX/worldw/husk.conf' is writable by everyone \(mode 0666\)" "$ERR"
HUSK_TEST_SYSCONFDIR=$FX/userowned run_husk run "$IMG_SQFS" -- true
want_status 125
want_re "'$FX/userowned/husk.conf' is owned by uid $MY_UID, not by root" "$ERR"
HUSK_TEST_SYSCONFDIR=$FX/userdir run_husk run "$IMG_SQFS" -- true
want_status 125
want_re "the directory of the site configuration '$FX/userdir' is owned by uid $MY_UID, not by root" "$ERR"
HUSK_TEST_SYSCONFDIR=$FX/userinclude run_husk run "$IMG_SQFS" -- true
want_status 125
want_re "'$FX/userinclude/user.conf' is owned by uid $MY_UID, not by root" "$ERR"
case_end

case_begin "an unreadable system file: the cause and the fix"
HUSK_TEST_SYSCONFDIR=$FX/unreadable run_husk run "$IMG_SQFS" -- true
want_status 125
want_husk_error
want_re "^husk: site configuration '$FX/unreadable/husk.conf': Permission denied; it must be readable by every user \(as root: chmod 0644" "$ERR"
case_end

case_begin "husk doctor reports the site configuration and the shipped profiles"
HUSK_TEST_SYSCONFDIR=$FX/good HUSK_TEST_DATADIR=$FX/share run_husk doctor
want_re "^ok +site configuration +$GOOD: 1 bind\(s\), 2 forbidden bind destination\(s\), images below 1 directory, user files not allowed, 2 profile\(s\): t-mpi, t-net$"
HUSK_TEST_SYSCONFDIR=$FX/empty run_husk doctor
want_re "^info +site configuration +none \($FX/empty/husk.conf does not exist\)"
HUSK_TEST_SYSCONFDIR=$FX/bad run_husk doctor
want_status 1
want_re "^FAIL +site configuration +$FX/bad/husk.conf:3: gpu = 'sometimes'"
case_end

case_begin "nothing is left behind"
check_leftovers
case_end

done_testing
