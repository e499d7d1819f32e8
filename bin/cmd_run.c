/* cmd_run.c: `husk run` and `husk shell`: options into a plan, then run it. */
#include "husk_config.h"
#include "cli.h"
#include "conf.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_ENV_FILE = 256, OPT_CLEAN_ENV, OPT_CWD, OPT_NO_HOME, OPT_FAKE_ROOT,
	OPT_WRITABLE_TMPFS, OPT_DRY_RUN, OPT_PROVENANCE, OPT_JOIN, OPT_NO_JOIN, OPT_MPI, OPT_HELP,
	OPT_CONFIG, OPT_PLACEMENT, OPT_GPU, OPT_NV, OPT_ROCM, OPT_DEVICE, OPT_WARM_RECORD,
	OPT_NO_WARM };

static const struct option run_opts[] = {
	{ "bind", required_argument, NULL, 'b' },
	{ "env", required_argument, NULL, 'e' },
	{ "env-file", required_argument, NULL, OPT_ENV_FILE },
	{ "clean-env", no_argument, NULL, OPT_CLEAN_ENV },
	{ "cwd", required_argument, NULL, OPT_CWD },
	{ "no-home", no_argument, NULL, OPT_NO_HOME },
	{ "fake-root", no_argument, NULL, OPT_FAKE_ROOT },
	{ "writable-tmpfs", no_argument, NULL, OPT_WRITABLE_TMPFS },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "provenance", required_argument, NULL, OPT_PROVENANCE },
	{ "join", required_argument, NULL, OPT_JOIN },
	{ "no-join", no_argument, NULL, OPT_NO_JOIN },
	{ "warm-record", required_argument, NULL, OPT_WARM_RECORD },
	{ "no-warm", no_argument, NULL, OPT_NO_WARM },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "mpi", required_argument, NULL, OPT_MPI },
	{ "placement", required_argument, NULL, OPT_PLACEMENT },
	{ "gpu", optional_argument, NULL, OPT_GPU },
	{ "nv", no_argument, NULL, OPT_NV },
	{ "rocm", no_argument, NULL, OPT_ROCM },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

void help_run(bool shell)
{
	if (shell)
		printf("Usage: husk shell [OPTIONS] IMAGE[@sha256:HEX]\n\n"
		       "Start an interactive shell inside IMAGE: $SHELL when the image has it,\n"
		       "otherwise /bin/sh. Takes the options of 'husk run'.\n\n");
	else
		printf("Usage: husk run [OPTIONS] IMAGE[@sha256:HEX] [[--] COMMAND [ARG...]]\n\n"
		       "Run COMMAND inside IMAGE (a directory or a SquashFS file), as yourself,\n"
		       "in new user and mount namespaces. No privilege, no daemon. Without a\n"
		       "COMMAND, run the image's entrypoint followed by its cmd (from its\n"
		       "/.husk/metadata.json); a COMMAND given replaces both.\n\n"
		       "IMAGE@sha256:HEX pins the image: husk computes the SHA-256 of the file it\n"
		       "opened (the one it then serves) and refuses to run when it differs.\n\n");
	printf("Options:\n"
	       "  -b, --bind SRC[:DST[:ro|rw]]  bind host SRC at DST (default DST=SRC, rw);\n"
	       "                                repeatable; also HUSK_BIND=SPEC,SPEC,...\n"
	       "  -e, --env NAME=VALUE          set a variable inside; repeatable\n"
	       "      --env-file FILE           set variables from FILE (NAME=VALUE lines)\n"
	       "      --clean-env               start from a minimal environment: HOME, USER,\n"
	       "                                LOGNAME, TERM, LANG, LC_*, TZ, a default PATH, and\n"
	       "                                for MPI wire-up SLURM_*, SLURMD_*, PMIX_*, PMI_*,\n"
	       "                                OMPI_*, PRTE_*, OPAL_*, HYDRA_*, MPI_LOCAL*\n"
	       "      --cwd DIR                 working directory inside (default: the current\n"
	       "                                one, bound in when it is not a system directory;\n"
	       "                                when it is not available: the image's workdir,\n"
	       "                                then $HOME, then /)\n"
	       "      --no-home                 do not bind $HOME\n"
	       "      --fake-root               appear as uid 0 inside (capabilities stay\n"
	       "                                confined to the namespace)\n"
	       "      --writable-tmpfs          writable root; changes vanish at exit\n"
	       "      --dry-run                 print mounts and environment; run nothing\n"
	       "      --provenance FILE         append one JSON record per launch to FILE (image,\n"
	       "                                digest, command, mounts, environment changes;\n"
	       "                                created mode 0600: it holds environment values);\n"
	       "                                also HUSK_PROVENANCE=FILE\n"
	       "      --join TAG                share one user namespace and one image mount\n"
	       "                                with every launch of the same TAG, image and\n"
	       "                                user on this node (a node-local session); also\n"
	       "                                HUSK_JOIN=TAG. Without it, the launches of one\n"
	       "                                Slurm job step, PMIx namespace or Open MPI job\n"
	       "                                join automatically\n"
	       "      --no-join                 never join a session: own namespaces, own mount\n"
	       "      --warm-record FILE        write what the command looks up, lists and reads\n"
	       "                                in the SquashFS image to FILE, a warm profile\n"
	       "                                (implies --no-join; husk build's WARM puts one\n"
	       "                                into an image)\n"
	       "      --no-warm                 do not replay the image's warm profile; also\n"
	       "                                HUSK_NO_WARM=1\n"
	       "      --mpi host|container      host: replace the image's MPI by the host's (its\n"
	       "                                libraries, plugins and tuning, bound read-only\n"
	       "                                under /.husk-host; the image must be built against\n"
	       "                                the same MPI ABI, with a glibc at least as new as\n"
	       "                                the host libraries need: checked first);\n"
	       "                                container (default): the image's own. Also\n"
	       "                                HUSK_MPI=host, or mpi = host in husk.conf\n"
	       "      --gpu[=auto|nvidia|amd|none]  the host's GPUs (alone: auto, those found;\n"
	       "                                nvidia/amd: fail without them): only the GPUs the\n"
	       "                                job may use (SLURM_STEP_GPUS, CUDA_VISIBLE_DEVICES,\n"
	       "                                ROCR_VISIBLE_DEVICES, ...) stay visible, renumbered\n"
	       "                                from 0 inside; the driver's libraries and tools are\n"
	       "                                bound read-only and put on LD_LIBRARY_PATH and PATH.\n"
	       "                                Default: gpu = in husk.conf, else none\n"
	       "      --nv, --rocm              --gpu=nvidia, --gpu=amd\n"
	       "      --device VENDOR/CLASS=NAME  a CDI device (or =all) from the specs in\n"
	       "                                /etc/cdi and /var/run/cdi; repeatable\n"
	       "      --config FILE             use FILE instead of the site configuration\n"
	       "                                (husk.conf), where the site allows it; also\n"
	       "                                HUSK_CONFIG=FILE; see husk.conf(5)\n"
	       "      --placement auto|none     auto: bind this local rank's CPUs and memory to\n"
	       "                                its share of the CPUs it was given (local rank\n"
	       "                                and size from Open MPI, PMIx, Hydra or Slurm),\n"
	       "                                set CUDA_VISIBLE_DEVICES or ROCR_VISIBLE_DEVICES\n"
	       "                                to the nearest GPU(s) (only narrowing a value\n"
	       "                                already set), UCX_NET_DEVICES to the nearest\n"
	       "                                NIC(s), and HUSK_PLACEMENT; see 'husk topology'\n"
	       "  -v, --verbose                 say what husk does, with timing (repeat for more)\n"
	       "  -q, --quiet                   no warnings\n"
	       "      --help                    this text\n\n"
	       "Environment precedence, lowest first: host (or --clean-env's set), the\n"
	       "image's /.husk/environment, the site configuration's variables, --env-file,\n"
	       "-e. HUSK_CONTAINER=1 and HUSK_IMAGE are always set.\n\n"
	       "Exit status: the command's; 128+N if it died of signal N; 125 if husk\n"
	       "failed (a pinned image whose digest differs included); 126 if the command\n"
	       "is not executable; 127 if it is not found.\n");
}

static int add_bind(struct husk_plan *plan, const char *spec, const char *why,
	const char *cwd)
{
	struct husk_err err = { 0 };
	struct husk_bind *v = realloc(plan->binds, (plan->n_binds + 1) * sizeof(*v));

	if (!v)
		return -1;
	plan->binds = v;
	if (husk_bind_parse(spec, cwd, &v[plan->n_binds], &err) < 0) {
		fprintf(stderr, "husk: %s\n", err.msg);
		return -1;
	}
	v[plan->n_binds++].why = why;
	return 0;
}

static int add_env(struct husk_plan *plan, const char *nv)
{
	const char *eq = strchr(nv, '=');

	if (!eq || !husk_env_name_ok(nv, (size_t)(eq - nv))) {
		fprintf(stderr, "husk: --env '%s': expected NAME=VALUE with NAME made of letters, "
			"digits and '_'\n", nv);
		return -1;
	}
	return husk_env_put(&plan->env_cli, nv);
}

static int binds_from_env(struct husk_plan *plan, const char *cwd)
{
	const char *v = getenv("HUSK_BIND");
	char *copy, *save = NULL;
	int r = 0;

	if (!v || !*v)
		return 0;
	copy = strdup(v);
	for (char *spec = strtok_r(copy, ",", &save); spec && r == 0;
	     spec = strtok_r(NULL, ",", &save))
		r = add_bind(plan, spec, "HUSK_BIND", cwd);
	free(copy);
	return r;
}

int cmd_run(int argc, char **argv, bool shell)
{
	const char *name = shell ? "shell" : "run";
	struct husk_plan plan;
	struct husk_err err = { 0 };
	char cwd[PATH_MAX];
	static char warm_path[PATH_MAX];
	char *shell_argv[] = { getenv("SHELL") && getenv("SHELL")[0] == '/' ? getenv("SHELL") :
		"/bin/sh", NULL };
	int verbosity = 0, c, status;
	bool quiet = false;
	int placement = -1;     /* -1: the site's default */
	char *image = NULL, *pin = NULL;
	const char *gpu = NULL;
	char **devices = NULL;
	size_t n_devices = 0;
	const char *config = NULL, *mpi = NULL;
	struct husk_conf conf = { 0 };
	struct husk_host host;

	husk_plan_init(&plan);
	husk_host_init(&host);
	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = '\0';
	/* HUSK_BIND first, so that -b lands on top of it. */
	if (binds_from_env(&plan, cwd[0] ? cwd : NULL) < 0)
		return HUSK_EXIT_FAILURE;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:b:e:vq", run_opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (add_bind(&plan, optarg, "--bind", cwd[0] ? cwd : NULL) < 0)
				return HUSK_EXIT_FAILURE;
			break;
		case 'e':
			if (add_env(&plan, optarg) < 0)
				return HUSK_EXIT_FAILURE;
			break;
		case OPT_ENV_FILE: {
			char **v = realloc(plan.env_files, (plan.n_env_files + 1) * sizeof(*v));
			if (!v)
				return HUSK_EXIT_FAILURE;
			plan.env_files = v;
			v[plan.n_env_files++] = optarg;
			break;
		}
		case OPT_CLEAN_ENV: plan.clean_env = true; break;
		case OPT_CWD: plan.cwd = optarg; break;
		case OPT_NO_HOME: plan.no_home = true; break;
		case OPT_FAKE_ROOT: plan.fake_root = true; break;
		case OPT_WRITABLE_TMPFS: plan.writable_tmpfs = true; break;
		case OPT_DRY_RUN: plan.dry_run = true; break;
		case OPT_PROVENANCE: plan.provenance = optarg; break;
		case OPT_JOIN: plan.join = optarg; plan.no_join = false; break;
		case OPT_NO_JOIN: plan.no_join = true; plan.join = NULL; break;
		case OPT_WARM_RECORD:
			/* Absolute: the supervisor writes it from the container's side. */
			if (optarg[0] != '/' && !cwd[0])
				return cli_usage_error(name, "--warm-record '%s': the working directory "
					"is unknown; give an absolute path", optarg);
			if ((size_t)snprintf(warm_path, sizeof(warm_path), "%s%s%s",
			    optarg[0] == '/' ? "" : cwd, optarg[0] == '/' ? "" : "/", optarg) >=
			    sizeof(warm_path))
				return cli_usage_error(name, "--warm-record: path too long");
			plan.warm_record = warm_path;
			break;
		case OPT_NO_WARM: plan.no_warm = true; break;
		case OPT_PLACEMENT:
			if (strcmp(optarg, "auto") && strcmp(optarg, "none"))
				return cli_usage_error(name, "--placement '%s': want auto or none", optarg);
			placement = !strcmp(optarg, "auto");
			break;
		case OPT_GPU: gpu = optarg ? optarg : "auto"; break;
		case OPT_NV: gpu = "nvidia"; break;
		case OPT_ROCM: gpu = "amd"; break;
		case OPT_DEVICE: {
			char **v = realloc(devices, (n_devices + 2) * sizeof(*v));
			if (!v)
				return HUSK_EXIT_FAILURE;
			devices = v;
			v[n_devices++] = optarg;
			v[n_devices] = NULL;
			break;
		}
		case OPT_CONFIG: config = optarg; break;
		case OPT_MPI: mpi = optarg; break;
		case 'v': verbosity++; break;
		case 'q': quiet = true; break;
		case OPT_HELP:
			help_run(shell);
			return 0;
		case ':':
			return cli_usage_error(name, "option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return cli_usage_error(name, "unknown option '-%c'", optopt);
			return cli_usage_error(name, "unknown option '%s'", argv[optind - 1]);
		}
	}
	cli_log_setup(verbosity, quiet);
	if (optind >= argc)
		return cli_usage_error(name, "no image given");
	if (cli_split_pin(argv[optind++], name, &image, &pin) < 0)
		return HUSK_EXIT_FAILURE;
	plan.image_path = image;
	plan.pin_digest = pin;
	/* The option wins over the environment. */
	if (!plan.provenance && getenv("HUSK_PROVENANCE") && *getenv("HUSK_PROVENANCE"))
		plan.provenance = getenv("HUSK_PROVENANCE");
	if (getenv("HUSK_NO_WARM") && *getenv("HUSK_NO_WARM"))
		plan.no_warm = true;
	/* Recording needs a server of this launch's own: never a session's. */
	if (plan.warm_record) {
		plan.no_join = true;
		plan.join = NULL;
	}
	if (optind < argc && !strcmp(argv[optind], "--"))
		optind++;
	if (shell) {
		if (optind < argc)
			return cli_usage_error(name, "'husk shell' takes no command; use 'husk run'");
		plan.argv = shell_argv;
		plan.shell_mode = "/bin/sh";
	} else {
		/* None: the image's entrypoint and cmd, decided once it is open. */
		plan.argv = optind < argc ? &argv[optind] : NULL;
	}
	/* The site configuration, then the host pieces that build on it. */
	if (cli_site_setup(&plan, config, &conf, &host) < 0 ||
	    cli_mpi_setup(&plan, mpi, &conf, &host) < 0) {
		free(devices);
		return HUSK_EXIT_FAILURE;
	}
	/* Placement next, the site's default unless --placement said: it binds
	 * this process before anything starts, and its CUDA_VISIBLE_DEVICES
	 * etc. must be in the host pieces before the GPU logic reads them. */
	if (placement < 0)
		placement = conf.placement && !strcmp(conf.placement, "auto");
	if (placement && cli_placement(&plan, &host, &err) < 0) {
		status = -1;
	} else if (cli_gpu_setup(&plan, gpu, devices, &conf, &host) < 0) {
		free(devices);
		return HUSK_EXIT_FAILURE;
	} else {
		status = husk_run(&plan, stdout, &err);
	}
	if (status < 0)
		status = cli_fail(&err);
	cli_repeat_warnings();
	free(devices);
	husk_plan_free(&plan);
	husk_host_free(&host);
	husk_conf_free(&conf);
	free(image);
	free(pin);
	return status;
}
