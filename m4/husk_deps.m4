dnl husk_deps.m4: one macro per dependency family. Each looks the library up
dnl with pkg-config and, when it is missing, names the Debian package to install.

dnl HUSK_REQUIRE_PKG(VAR, MODULE, DEBIAN-PACKAGE, WHAT)
AC_DEFUN([HUSK_REQUIRE_PKG], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$4 ($2) not found by pkg-config; install it with: apt-get install $3])])
])

dnl HUSK_OPTIONAL_PKG(NAME, VAR, MODULE, DEBIAN-PACKAGE, WHAT)
dnl A tri-state --with-NAME=yes|no|auto (auto by default): yes fails when the
dnl library is missing, auto uses it when present, no never looks.
AC_DEFUN([HUSK_OPTIONAL_PKG], [
  AC_ARG_WITH([$1], [AS_HELP_STRING([--with-$1=yes|no|auto], [use $5 (default: auto)])],
    [], [with_$1=auto])
  have_$1=no
  AS_IF([test "x$with_$1" != xno], [
    PKG_CHECK_MODULES([$2], [$3], [have_$1=yes], [
      AS_IF([test "x$with_$1" = xyes],
        [AC_MSG_ERROR([$5 ($3) not found by pkg-config; install it with: apt-get install $4])])
    ])
  ])
  AS_IF([test "x$have_$1" = xyes],
    [AC_DEFINE([HAVE_]m4_toupper([$1]), [1], [Define if $5 is available])])
  AM_CONDITIONAL([HAVE_]m4_toupper([$1]), [test "x$have_$1" = xyes])
])

AC_DEFUN([HUSK_CHECK_SQUASHFUSE], [
  HUSK_REQUIRE_PKG([SQUASHFUSE], [squashfuse_ll >= 0.1.103], [libsquashfuse-dev], [libsquashfuse_ll])
])

AC_DEFUN([HUSK_CHECK_FUSE3], [
  HUSK_REQUIRE_PKG([FUSE3], [fuse3 >= 3.10], [libfuse3-dev], [libfuse3])
])

AC_DEFUN([HUSK_CHECK_LIBCAP], [
  HUSK_REQUIRE_PKG([LIBCAP], [libcap >= 2.24], [libcap-dev], [libcap])
])

AC_DEFUN([HUSK_CHECK_HWLOC], [
  HUSK_OPTIONAL_PKG([hwloc], [HWLOC], [hwloc >= 2.0], [libhwloc-dev], [hwloc])
])

dnl libdeflate inflates gzip SquashFS blocks 2-3 times faster than zlib.
AC_DEFUN([HUSK_CHECK_LIBDEFLATE], [
  HUSK_OPTIONAL_PKG([libdeflate], [LIBDEFLATE], [libdeflate], [libdeflate-dev], [libdeflate])
])

dnl Run ids in provenance records.
AC_DEFUN([HUSK_CHECK_UUID], [
  HUSK_REQUIRE_PKG([UUID], [uuid], [uuid-dev], [libuuid])
])

dnl husk build: tar archives and OCI layers (any compression libarchive reads).
AC_DEFUN([HUSK_CHECK_LIBARCHIVE], [
  HUSK_REQUIRE_PKG([LIBARCHIVE], [libarchive >= 3.4], [libarchive-dev], [libarchive])
])

dnl OCI manifests and configs, image metadata, inspect --json, provenance.
AC_DEFUN([HUSK_CHECK_JSONC], [
  HUSK_REQUIRE_PKG([JSONC], [json-c >= 0.15], [libjson-c-dev], [json-c])
])

dnl CDI specs (Container Device Interface) are usually YAML.
AC_DEFUN([HUSK_CHECK_YAML], [
  HUSK_REQUIRE_PKG([YAML], [yaml-0.1 >= 0.2], [libyaml-dev], [libyaml])
])

dnl SHA-256 of images in husk run (uses the CPU's SHA extensions; cheap to load).
AC_DEFUN([HUSK_CHECK_NETTLE], [
  HUSK_REQUIRE_PKG([NETTLE], [nettle >= 3.4], [nettle-dev], [nettle])
])

dnl OCI blob digests in husk build (any algorithm a descriptor names).
AC_DEFUN([HUSK_CHECK_LIBCRYPTO], [
  HUSK_REQUIRE_PKG([LIBCRYPTO], [libcrypto >= 1.1], [libssl-dev], [OpenSSL libcrypto])
])

dnl Kernel interfaces we call directly; the headers only decide whether the
dnl fallbacks are compiled in, the running kernel decides which path is taken.
AC_DEFUN([HUSK_CHECK_KERNEL_HEADERS], [
  AC_CHECK_HEADERS([linux/openat2.h linux/mount.h sys/pidfd.h])
  AC_CHECK_DECLS([SYS_openat2, SYS_open_tree, SYS_move_mount, SYS_mount_setattr, SYS_pidfd_open],
    [], [], [[#include <sys/syscall.h>]])
])

dnl Launch speed: every husk launch pays the dynamic loader for each shared
dnl library it needs, and on a virtual machine that is about 2 ms for the
dnl fifteen of libhusk (measured: `husk --version` 4.9 ms dynamic, 2.7 ms with
dnl the same libraries linked in). So the libraries of libhusk, all but the C
dnl library, are linked from their static archives when those are installed
dnl (Debian's -dev packages ship them); otherwise, or with
dnl --disable-static-deps, dynamically. Sets HUSK_RUN_LIBS.
AC_DEFUN([HUSK_CHECK_STATIC_DEPS], [
  AC_ARG_ENABLE([static-deps],
    [AS_HELP_STRING([--disable-static-deps],
      [link libhusk's libraries dynamically (by default they are linked from
       their static archives when installed: about 2 ms less per launch)])],
    [], [enable_static_deps=auto])
  husk_dynamic_libs="$SQUASHFUSE_LIBS $FUSE3_LIBS $LIBCAP_LIBS $LIBDEFLATE_LIBS $JSONC_LIBS dnl
$NETTLE_LIBS $UUID_LIBS $YAML_LIBS"
  HUSK_RUN_LIBS="$husk_dynamic_libs"
  have_static_deps=no
  AS_IF([test "x$enable_static_deps" != xno], [
    AS_IF([test "x$have_libdeflate" = xyes], [husk_deflate=deflate], [husk_deflate=])
    dnl squashfuse's .pc file does not list its decompressors: all of them.
    dnl Archives by path: libtool drops -Wl,-Bstatic from a convenience
    dnl library's dependencies.
    husk_static=
    for husk_l in squashfuse_ll squashfuse fuse3 cap $husk_deflate json-c nettle uuid yaml dnl
z lzma lzo2 lz4 zstd; do
      husk_a=`$CC -print-file-name=lib$husk_l.a`
      AS_CASE([$husk_a], [/*], [husk_static="$husk_static $husk_a"],
        [husk_static="$husk_static -Wl,-Bstatic -l$husk_l -Wl,-Bdynamic"])
    done
    husk_static="$husk_static -lpthread -ldl -lrt"
    AC_MSG_CHECKING([whether libhusk's libraries link statically])
    husk_save_LIBS=$LIBS
    husk_save_CFLAGS=$CFLAGS
    LIBS="$husk_static $LIBS"
    CFLAGS="$CFLAGS $SQUASHFUSE_CFLAGS $FUSE3_CFLAGS $JSONC_CFLAGS $YAML_CFLAGS"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[
#include <squashfuse/squashfuse.h>
#include <sys/capability.h>
#include <json.h>
#include <yaml.h>
#include <uuid/uuid.h>
#include <nettle/sha2.h>
#undef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>
]], [[
sqfs fs; struct sha256_ctx c; uuid_t u; yaml_parser_t y;
sqfs_init(&fs, 0, 0); sha256_init(&c); uuid_generate(u); yaml_parser_initialize(&y);
cap_free(cap_get_proc()); json_object_put(json_object_new_object());
fuse_lowlevel_version();
]])], [have_static_deps=yes], [have_static_deps=no])
    LIBS=$husk_save_LIBS
    CFLAGS=$husk_save_CFLAGS
    AC_MSG_RESULT([$have_static_deps])
    AS_IF([test "x$have_static_deps" = xyes], [HUSK_RUN_LIBS="$husk_static"],
      [test "x$enable_static_deps" = xyes],
      [AC_MSG_ERROR([--enable-static-deps: the static archives are missing (Debian: apt-get install libsquashfuse-dev libfuse3-dev libcap-dev libjson-c-dev nettle-dev uuid-dev libyaml-dev zlib1g-dev liblzma-dev liblzo2-dev liblz4-dev libzstd-dev)])])
  ])
  AC_SUBST([HUSK_RUN_LIBS])
])
