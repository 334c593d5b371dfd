/* serve.c: `consentgate serve`: load, check and run the proxy. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_internal.h"
#include "cmd_internal.h"
#include "consent_pg_internal.h"
#include "accesslog_internal.h"
#include "declog_internal.h"
#include "logq_internal.h"
#include "proxy_internal.h"
#include "pseudonym_internal.h"
#include "serve_internal.h"
#include "version_internal.h"

static void
serve_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: consentgate serve [OPTIONS]\n\n"
	    "Run the proxy: requests to --listen are checked against the "
	    "policy and\n"
	    "the consent table and forwarded to --upstream.\n\n"
	    "  --listen HOST:PORT   where to accept clients (default "
	    "127.0.0.1:8000;\n"
	    "                       port 0 picks a free one)\n"
	    "  --upstream URL       the ML ingestion endpoint, "
	    "http://HOST:PORT or\n"
	    "                       https://HOST:PORT (verified, with SNI)\n"
	    "  --policy FILE        the rule file\n"
	    "  --consent FILE       the consent table: CSV or snapshot "
	    "(consent build),\n"
	    "                       or postgresql://... (live; "
	    "policy/sql/consent.sql)\n"
	    "  --consent-seed FILE  with a database: a snapshot to start from "
	    "at once,\n"
	    "                       rewritten as the table is compacted\n"
	    "  --workers N          worker threads (default: one per core)\n"
	    "  --config FILE        JSON file with these settings and every "
	    "limit;\n"
	    "                       flags given here override it\n"
	    "  --decision-log FILE  append one JSON line per inspected "
	    "request: policy,\n"
	    "                       snapshot, and per record the rule and "
	    "evidence id\n"
	    "                       ('-' for stdout)\n"
	    "  --decision-log-key FILE  name each person in the decision log "
	    "by\n"
	    "                       HMAC-SHA-256 with this key (32 bytes or "
	    "more)\n"
	    "  --access-log FILE    one JSON line per request ('-' for "
	    "stdout)\n"
	    "  --admin HOST:PORT    the admin listener: /metrics "
	    "(Prometheus), /healthz,\n"
	    "                       /readyz, POST /reload\n"
	    "  --tls-cert FILE      serve TLS 1.2/1.3 with this PEM "
	    "certificate chain\n"
	    "  --tls-key FILE       and this PEM private key (both reloaded "
	    "on SIGHUP)\n"
	    "  --tls-client-ca FILE require client certificates issued by "
	    "these CAs\n"
	    "                       (mutual TLS; routes may name the "
	    "clients they take)\n"
	    "  --upstream-ca FILE   CAs the https:// upstream's certificate "
	    "must chain to\n"
	    "                       (default: the system store)\n"
	    "  --upstream-cert FILE, --upstream-key FILE\n"
	    "                       a client certificate for the upstream\n"
	    "  --check              load everything and try what a start "
	    "needs (the\n"
	    "                       addresses, the decision log); print "
	    "'configuration OK'\n"
	    "                       or every problem, and exit\n"
	    "  -v, --verbose        every request to stderr, in the access-log "
	    "format\n"
	    "  --help, --version\n\n"
	    "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads policy and "
	    "consent;\nSIGHUP and SIGUSR1 reopen the decision and access "
	    "logs.\n");
}

static void
print_errors(const struct cg_errors *errs)
{
	for (unsigned i = 0; i < errs->count; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
	if (errs->dropped)
		fprintf(stderr, "(%u more errors)\n", errs->dropped);
}

static void
set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = strdup(v);
}

/*
 * Parse serve's flags into cfg (file first, flags override).
 * Returns 0, 1 for --help/--version (already printed), or -1 with errors
 * printed. *check is set by --check.
 */
int
serve_parse_args(int argc, char **argv, struct config *cfg, bool *check)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"upstream", required_argument, NULL, 'u'},
	    {"policy", required_argument, NULL, 'p'},
	    {"consent", required_argument, NULL, 'c'},
	    {"consent-seed", required_argument, NULL, 'S'},
	    {"workers", required_argument, NULL, 'w'},
	    {"config", required_argument, NULL, 'f'},
	    {"check", no_argument, NULL, 'k'},
	    {"decision-log", required_argument, NULL, 'd'},
	    {"decision-log-key", required_argument, NULL, 'E'},
	    {"access-log", required_argument, NULL, 'G'},
	    {"admin", required_argument, NULL, 'a'},
	    {"tls-cert", required_argument, NULL, 'T'},
	    {"tls-key", required_argument, NULL, 'K'},
	    {"tls-client-ca", required_argument, NULL, 'C'},
	    {"upstream-ca", required_argument, NULL, 'A'},
	    {"upstream-cert", required_argument, NULL, 'U'},
	    {"upstream-key", required_argument, NULL, 'Y'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct cg_errors errs;
	int ch, rc = 0;

	cg_errors_init(&errs);
	opterr = 0;
	/* pass 1: --config, --help, --version */
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":v", opts, NULL)) != -1) {
		if (ch == 'h') {
			serve_usage(stdout);
			return 1;
		}
		if (ch == 'V') {
			version_print(stdout);
			return 1;
		}
		if (ch == 'f' && config_load_file(cfg, optarg, &errs) != 0)
			rc = -1;
	}
	/* pass 2: the flags override the file */
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":v", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			set_str(&cfg->listen, optarg);
			break;
		case 'u':
			set_str(&cfg->upstream, optarg);
			break;
		case 'p':
			set_str(&cfg->policy_path, optarg);
			break;
		case 'c':
			set_str(&cfg->consent_path, optarg);
			break;
		case 'S':
			set_str(&cfg->consent_seed, optarg);
			break;
		case 'w': {
			char *end;
			long n = strtol(optarg, &end, 10);

			if (*optarg == '\0' || *end != '\0' || n < 1 ||
			    n > 256) {
				cg_errors_add(
				    &errs, "--workers", 0, 0,
				    "'%s': must be a number from 1 to 256",
				    optarg);
				rc = -1;
			} else {
				cfg->workers = (unsigned)n;
			}
			break;
		}
		case 'k':
			*check = true;
			break;
		case 'd':
			set_str(&cfg->decision_log, optarg);
			break;
		case 'E':
			set_str(&cfg->decision_log_key, optarg);
			break;
		case 'G':
			set_str(&cfg->access_log, optarg);
			break;
		case 'a':
			set_str(&cfg->admin, optarg);
			break;
		case 'T':
			set_str(&cfg->tls_cert, optarg);
			break;
		case 'K':
			set_str(&cfg->tls_key, optarg);
			break;
		case 'C':
			set_str(&cfg->tls_client_ca, optarg);
			break;
		case 'A':
			set_str(&cfg->upstream_ca, optarg);
			break;
		case 'U':
			set_str(&cfg->upstream_cert, optarg);
			break;
		case 'Y':
			set_str(&cfg->upstream_key, optarg);
			break;
		case 'v':
			log_verbose = 1;
			break;
		case 'f':
		case 'h':
		case 'V':
			break;
		case ':':
			cg_errors_add(&errs, argv[optind - 1], 0, 0,
			              "needs a value");
			rc = -1;
			break;
		default:
			cg_errors_add(&errs, argv[optind - 1], 0, 0,
			              "unknown option (see --help)");
			rc = -1;
			break;
		}
	}
	if (optind < argc) {
		cg_errors_add(&errs, argv[optind], 0, 0,
		              "unexpected argument (see --help)");
		rc = -1;
	}
	if (rc == 0 && config_resolve(cfg, &errs) != 0)
		rc = -1;
	if (rc != 0)
		print_errors(&errs);
	cg_errors_reset(&errs);
	return rc;
}

/* The database source of this process, when --consent is a URL. */
static struct consent_pg *serve_pg;

/* The first snapshot from a database: the policy, then the table. */
static struct snapshot *
load_pg(const struct config *cfg, struct cg_errors *errs)
{
	struct policy *p = policy_load(cfg->policy_path, errs);
	struct consent_table *t = NULL;

	if (p == NULL)
		return NULL;
	serve_pg = consent_pg_open(cfg, p, &t, errs);
	if (serve_pg == NULL) {
		policy_free(p);
		return NULL;
	}
	return snapshot_new(p, t);
}

struct snapshot *
serve_load(const struct config *cfg)
{
	struct cg_errors errs;
	struct snapshot *snap;

	cg_errors_init(&errs);
	snap = consent_pg_is_url(cfg->consent_path)
	           ? load_pg(cfg, &errs)
	           : snapshot_load(NULL, SNAPSHOT_BOTH, cfg->policy_path,
	                           cfg->consent_path, &errs);
	if (snap == NULL)
		print_errors(&errs);
	cg_errors_reset(&errs);
	return snap;
}

/*
 * What a start would fail on besides the files: the decision log cannot
 * be opened for appending, or an address is taken (the probe server_listen
 * and admin_start would fail the same way). Nothing is created or kept
 * open. 0, or -1 with every problem in errs.
 */
static int
check_start(const struct config *cfg, struct cg_errors *errs)
{
	unsigned before = errs->count;

	if (cfg->decision_log != NULL && strcmp(cfg->decision_log, "-") != 0) {
		int fd = open(cfg->decision_log,
		              O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);

		if (fd >= 0) {
			close(fd);
		} else if (errno == ENOENT) {
			/* open would create it: its directory must take it */
			char *dir = strdup(cfg->decision_log);
			char *slash = dir ? strrchr(dir, '/') : NULL;
			const char *d = slash == NULL ? "." : dir;

			if (slash == dir)
				d = "/";
			else if (slash != NULL)
				*slash = '\0';
			if (access(d, W_OK | X_OK) != 0)
				cg_errors_add(errs, "--decision-log", 0, 0,
				              "cannot create '%s': %s",
				              cfg->decision_log,
				              strerror(errno));
			free(dir);
		} else {
			cg_errors_add(errs, "--decision-log", 0, 0,
			              "cannot open '%s': %s", cfg->decision_log,
			              strerror(errno));
		}
	}
	if (listen_probe(&cfg->listen_addr, cfg->listen_addrlen) != 0)
		cg_errors_add(errs, "--listen", 0, 0, "cannot listen on %s: %s",
		              cfg->listen,
		              errno == EADDRINUSE ? "address already in use"
		                                  : strerror(errno));
	if (cfg->admin != NULL &&
	    listen_probe(&cfg->admin_addr, cfg->admin_addrlen) != 0)
		cg_errors_add(errs, "--admin", 0, 0, "cannot listen on %s: %s",
		              cfg->admin,
		              errno == EADDRINUSE ? "address already in use"
		                                  : strerror(errno));
	return errs->count == before ? 0 : -1;
}

int
serve_run(const struct config *cfg, struct snapshot *snap)
{
	struct cg_errors errs;
	struct server *s = server_new(cfg, snap);
	struct admin *admin = NULL;
	int rc = -1;

	cg_errors_init(&errs);
	if (s == NULL) {
		snapshot_unref(snap);
		goto out;
	}
	if (server_listen(s, &errs) != 0)
		goto out;
	if (cfg->admin != NULL) {
		admin = admin_start(s, cfg, &errs);
		if (admin == NULL)
			goto out;
		const char *colon = strrchr(cfg->admin, ':');
		int hl = colon ? (int)(colon - cfg->admin) : 0;

		/* the bound port, also for :0 (harness.py reads it) */
		log_msg("admin on %.*s:%d (port %d)", hl, cfg->admin,
		        admin_port(admin), admin_port(admin));
	}
	if (serve_pg != NULL && consent_pg_start(serve_pg, s, &errs) != 0)
		goto out;
	rc = server_run(s);
out:
	for (unsigned i = 0; i < errs.count; i++)
		log_error("%s", errs.msgs[i]);
	cg_errors_reset(&errs);
	admin_stop(admin);
	consent_pg_free(serve_pg); /* before the server it installs into */
	serve_pg = NULL;
	server_free(s);
	return rc;
}

int
cmd_serve(int argc, char **argv)
{
	struct config cfg;
	struct snapshot *snap = NULL;
	bool check = false;
	int rc, exit_code = 1;

	config_init(&cfg);
	rc = serve_parse_args(argc, argv, &cfg, &check);
	if (rc != 0) {
		exit_code = rc > 0 ? 0 : 2;
		goto out;
	}
	/* a database that cannot be reached must not serve old data
	   forever: it fails closed after this long unless configured */
	if (consent_pg_is_url(cfg.consent_path) && cfg.max_staleness_s == 0)
		cfg.max_staleness_s = CONSENT_PG_DEFAULT_STALENESS_S;
	snap = serve_load(&cfg);
	if (check) {
		struct cg_errors errs;

		cg_errors_init(&errs);
		if (check_start(&cfg, &errs) != 0)
			print_errors(&errs);
		/* the rule file's warnings, as consentgate check prints them */
		if (snap != NULL)
			print_errors(policy_warnings(snapshot_policy(snap)));
		if (snap != NULL && errs.count == 0) {
			printf("configuration OK\n");
			exit_code = 0;
		}
		cg_errors_reset(&errs);
		goto out;
	}
	if (snap == NULL)
		goto out;
	{
		char why[512];

		declog_set_queue(cfg.decision_log_queue,
		                 cfg.decision_log_full != NULL &&
		                     strcmp(cfg.decision_log_full, "drop") ==
		                         0);
		if (pseudonym_set_key(cfg.decision_log_key, why, sizeof(why)) !=
		    0) {
			log_error("--decision-log-key: %s", why);
			goto out;
		}
	}
	if (declog_open(cfg.decision_log) != 0) {
		log_error("--decision-log: cannot open '%s': %s",
		          cfg.decision_log, strerror(errno));
		goto out;
	}
	if (accesslog_open(cfg.access_log, log_verbose) != 0) {
		log_error("--access-log: cannot open '%s': %s",
		          cfg.access_log ? cfg.access_log : "(stderr)",
		          strerror(errno));
		goto out;
	}
	exit_code = serve_run(&cfg, snap) == 0 ? 0 : 1;
	snap = NULL; /* serve_run took it */
	/* the logs' last lines, here rather than at exit: a writer stuck on
	   its disk is given up on (logged), and the exit status says that
	   lines of the proof were lost */
	declog_close();
	accesslog_close();
	if (logq_abandoned())
		exit_code = 1;
out:
	snapshot_unref(snap);
	consent_pg_free(serve_pg); /* serve --check, or a failed start */
	serve_pg = NULL;
	config_reset(&cfg);
	return exit_code;
}
