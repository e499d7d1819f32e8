/* cli.h: what the husk command's files share. Only bin/ prints and exits. */
#ifndef HUSK_CLI_H
#define HUSK_CLI_H

#include "husk.h"

/* report.c */
void cli_log_setup(int verbosity, bool quiet);
/* Print "husk: MSG" (with file:line at -v) and repeated warnings; return status. */
int cli_fail(const struct husk_err *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_repeat_warnings(void);

/* image_arg.c: "IMAGE@sha256:HEX" into a path and a digest (64 lowercase hex
 * digits, or NULL when there is no suffix), both malloc'd. On a malformed
 * digest prints a usage error naming cmd and returns -1. */
int cli_split_pin(const char *arg, const char *cmd, char **path, char **digest);
/* Is s 64 lowercase hex digits? */
bool cli_is_sha256_hex(const char *s);

/* cmd_inspect.c, cmd_verify.c */
int cmd_inspect(int argc, char **argv);
void help_inspect(void);
int cmd_verify(int argc, char **argv);
void help_verify(void);

/* cmd_run.c */
int cmd_run(int argc, char **argv, bool shell);
void help_run(bool shell);

/* site.c: load the site configuration (config: --config, or NULL), check
 * the plan against it and fill host; prints the error and returns -1. */
struct husk_conf;
struct husk_host;
int cli_site_setup(struct husk_plan *plan, const char *config, struct husk_conf *conf,
	struct husk_host *host);

/* site.c: what --mpi=host and --gpu share. begin opens the image for host
 * injection (its glibc and linker cache are read) and returns 0, or -1 with
 * err set and nothing left open; end closes both and, when r is 0, puts
 * host in the plan; otherwise it prints err and returns -1. */
struct husk_image;
struct husk_inject;
int cli_inject_begin(const struct husk_plan *plan, struct husk_image *img,
	struct husk_inject **ctx, struct husk_err *err);
int cli_inject_end(struct husk_plan *plan, struct husk_host *host, struct husk_image *img,
	struct husk_inject *ctx, int r, const struct husk_err *err);

/* mpi.c: --mpi=host|container (mpi: the option's value or NULL); fills
 * host; prints the error and returns -1. */
int cli_mpi_setup(struct husk_plan *plan, const char *mpi, struct husk_conf *conf,
	struct husk_host *host);

/* gpu.c: --gpu (gpu: its value or NULL, then husk.conf's gpu =) and
 * --device (devices: NULL-terminated or NULL) into host; prints the error
 * and returns -1. */
int cli_gpu_setup(struct husk_plan *plan, const char *gpu, char **devices,
	struct husk_conf *conf, struct husk_host *host);

/* spank_task.c: a task started by the Slurm plugin (HUSK_SPANK_ARGV). */
int cmd_spank_task(int argc, char **argv, const char *spec);

/* cmd_doctor.c */
int cmd_doctor(int argc, char **argv);
void help_doctor(void);

/* cmd_build.c */
int cmd_build(int argc, char **argv);
void help_build(void);

/* place_cli.c: --placement=auto (decide, bind this process, put the
 * variables and a "placement" item in host, and the visible-devices
 * variables in this process's environment too, where --gpu reads them: call
 * it before the GPU logic) and `husk topology` (runs the husk-place helper,
 * which alone links hwloc). */
int cli_placement(struct husk_plan *plan, struct husk_host *host, struct husk_err *err);
int cli_exec_topology(int argc, char **argv);

#endif
