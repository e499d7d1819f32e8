dnl The Slurm SPANK plugin (mpi-integration/slurm/spank_husk.so): optional,
dnl built when slurm/spank.h is found (Debian: libslurm-dev). The plugin is
dnl installed in --with-slurm-plugindir (default: $libdir/slurm, where
dnl Debian's slurmd looks for plugins).
AC_DEFUN([HUSK_CHECK_SPANK], [
  AC_ARG_WITH([spank],
    [AS_HELP_STRING([--with-spank], [build the Slurm SPANK plugin (default: when slurm/spank.h is found)])],
    [], [with_spank=check])
  AC_ARG_WITH([slurm-plugindir],
    [AS_HELP_STRING([--with-slurm-plugindir=DIR], [install spank_husk.so in DIR (default: LIBDIR/slurm)])],
    [slurmplugindir=$withval], [slurmplugindir='${libdir}/slurm'])
  AC_SUBST([slurmplugindir])
  have_spank=no
  AS_IF([test "x$with_spank" != xno], [
    AC_CHECK_HEADER([slurm/spank.h], [have_spank=yes], [have_spank=no])
    AS_IF([test "x$have_spank" = xno && test "x$with_spank" = xyes],
      [AC_MSG_ERROR([--with-spank: slurm/spank.h not found; install libslurm-dev (Debian) or slurm-devel])])
  ])
  AS_IF([test "x$have_spank" = xno && test "x$with_spank" = xcheck],
    [spank_summary="no (slurm/spank.h not found: install libslurm-dev)"],
    [spank_summary=$have_spank])
  AM_CONDITIONAL([HAVE_SPANK], [test "x$have_spank" = xyes])
])
