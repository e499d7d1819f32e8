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
