/*
 * config.c: settings from a JSON file and the command line, with defaults.
 * Errors in the file carry file:line:col (jsonpos.h), as the rule file's
 * do; files it names are relative to its directory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "consentgate/jsonpos.h"
#include "proxy_internal.h"
#include "pseudonym_internal.h"

void
config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_header_bytes = CG_DEFAULT_MAX_HEADER_BYTES;
	cfg->max_header_count = CG_DEFAULT_MAX_HEADER_COUNT;
	cfg->max_body_bytes = CG_DEFAULT_MAX_BODY_BYTES;
	cfg->head_timeout_ms = CG_DEFAULT_HEAD_TIMEOUT_MS;
	cfg->body_timeout_ms = CG_DEFAULT_BODY_TIMEOUT_MS;
	cfg->idle_timeout_ms = CG_DEFAULT_IDLE_TIMEOUT_MS;
	cfg->connect_timeout_ms = CG_DEFAULT_CONNECT_TIMEOUT_MS;
	cfg->response_timeout_ms = CG_DEFAULT_RESPONSE_TIMEOUT_MS;
	cfg->drain_timeout_ms = CG_DEFAULT_DRAIN_TIMEOUT_MS;
	cfg->max_conns = CG_DEFAULT_MAX_CONNS;
	cfg->fd_reserve = CG_DEFAULT_FD_RESERVE;
	cfg->pool_size = CG_DEFAULT_POOL_SIZE;
	cfg->max_staleness_s = CG_DEFAULT_MAX_STALENESS_S;
	cfg->tls_handshake_timeout_ms = CG_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
}

void
config_reset(struct config *cfg)
{
	free(cfg->listen);
	free(cfg->upstream);
	free(cfg->policy_path);
	free(cfg->consent_path);
	free(cfg->consent_seed);
	free(cfg->decision_log);
	free(cfg->decision_log_key);
	free(cfg->decision_log_full);
	free(cfg->access_log);
	free(cfg->admin);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_client_ca);
	free(cfg->upstream_ca);
	free(cfg->upstream_cert);
	free(cfg->upstream_key);
	config_init(cfg);
}

/* The numeric settings a config file may hold, with their bounds. */
static const struct {
	const char *key;
	size_t offset;
	int is_size; /* size_t, else unsigned */
	uint64_t min, max;
} numeric_keys[] = {
    {"workers", offsetof(struct config, workers), 0, 0, 256},
    {"max_header_bytes", offsetof(struct config, max_header_bytes), 1, 256,
     1u << 20},
    {"max_header_count", offsetof(struct config, max_header_count), 0, 4,
     CG_MAX_HEADERS},
    {"max_body_bytes", offsetof(struct config, max_body_bytes), 1, 0,
     1ull << 34},
    {"head_timeout_ms", offsetof(struct config, head_timeout_ms), 0, 1,
     3600000},
    {"body_timeout_ms", offsetof(struct config, body_timeout_ms), 0, 1,
     3600000},
    {"idle_timeout_ms", offsetof(struct config, idle_timeout_ms), 0, 1,
     3600000},
    {"connect_timeout_ms", offsetof(struct config, connect_timeout_ms), 0, 1,
     3600000},
    {"response_timeout_ms", offsetof(struct config, response_timeout_ms), 0, 1,
     3600000},
    {"drain_timeout_ms", offsetof(struct config, drain_timeout_ms), 0, 0,
     3600000},
    {"max_conns", offsetof(struct config, max_conns), 0, 1, 1000000},
    {"fd_reserve", offsetof(struct config, fd_reserve), 0, 0, 100000},
    {"pool_size", offsetof(struct config, pool_size), 0, 0, 100000},
    {"max_staleness_s", offsetof(struct config, max_staleness_s), 0, 0,
     100000000},
    {"tls_handshake_timeout_ms",
     offsetof(struct config, tls_handshake_timeout_ms), 0, 1, 3600000},
    {"decision_log_queue", offsetof(struct config, decision_log_queue), 0, 1,
     10000000},
};

static const struct {
	const char *key;
	size_t offset;
	int is_path; /* a file: relative to the config file's directory */
} string_keys[] = {
    {"listen", offsetof(struct config, listen), 0},
    {"upstream", offsetof(struct config, upstream), 0},
    {"policy", offsetof(struct config, policy_path), 1},
    {"consent", offsetof(struct config, consent_path), 1},
    {"consent_seed", offsetof(struct config, consent_seed), 1},
    {"decision_log", offsetof(struct config, decision_log), 1},
    {"decision_log_key", offsetof(struct config, decision_log_key), 1},
    {"decision_log_full", offsetof(struct config, decision_log_full), 0},
    {"access_log", offsetof(struct config, access_log), 1},
    {"admin", offsetof(struct config, admin), 0},
    {"tls_cert", offsetof(struct config, tls_cert), 1},
    {"tls_key", offsetof(struct config, tls_key), 1},
    {"tls_client_ca", offsetof(struct config, tls_client_ca), 1},
    {"upstream_ca", offsetof(struct config, upstream_ca), 1},
    {"upstream_cert", offsetof(struct config, upstream_cert), 1},
    {"upstream_key", offsetof(struct config, upstream_key), 1},
};

/*
 * value as a path named in the config file at cfg_path: a relative one is
 * taken from the config file's directory (where its author sees it), not
 * from wherever consentgate happens to start; "-" (stdout) stays.
 */
static char *
config_relative(const char *cfg_path, const char *value)
{
	const char *slash = strrchr(cfg_path, '/');
	char *out = NULL;

	if (value[0] == '/' || value[0] == '\0' || strcmp(value, "-") == 0 ||
	    slash == NULL || strstr(value, "://") != NULL) /* a URL */
		return strdup(value);
	if (asprintf(&out, "%.*s/%s", (int)(slash - cfg_path), cfg_path,
	             value) < 0)
		return NULL;
	return out;
}

/* Read a whole file; NULL with errno. */
static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n == cap) {
			char *nb = realloc(buf, cap ? cap * 2 : 4096);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
			cap = cap ? cap * 2 : 4096;
		}
		size_t r = fread(buf + n, 1, cap - n, f);

		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

int
config_load_file(struct config *cfg, const char *path, struct cg_errors *errs)
{
	json_error_t jerr;
	json_t *root = NULL, *value;
	const char *key;
	unsigned before = errs->count;
	struct jsonpos *pos = NULL;
	size_t len = 0;
	char *text = read_file(path, &len);
	int line, col;

	if (text == NULL) {
		cg_errors_add(errs, path, 0, 0, "cannot read: %s",
		              strerror(errno));
		return -1;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		jsonpos_of_error(text, len, jerr.line, jerr.column,
		                 jerr.position, &line, &col);
		cg_errors_add(errs, path, line, col, "%s", jerr.text);
		goto out;
	}
	pos = jsonpos_scan(text, len);
	if (!json_is_object(root)) {
		cg_errors_add(errs, path, 1, 1,
		              "the configuration must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, value)
	{
		size_t i;
		int found = 0, kl, kc, vl, vc;

		jsonpos_find(pos, key, true, &kl, &kc);
		jsonpos_find(pos, key, false, &vl, &vc);
		for (i = 0; i < sizeof(string_keys) / sizeof(string_keys[0]);
		     i++) {
			char **slot;

			if (strcmp(key, string_keys[i].key) != 0)
				continue;
			found = 1;
			if (!json_is_string(value)) {
				cg_errors_add(errs, path, vl, vc,
				              "\"%s\" must be a string", key);
				break;
			}
			slot = (char **)((char *)cfg + string_keys[i].offset);
			free(*slot);
			*slot = string_keys[i].is_path
			            ? config_relative(path,
			                              json_string_value(value))
			            : strdup(json_string_value(value));
		}
		for (i = 0; !found &&
		            i < sizeof(numeric_keys) / sizeof(numeric_keys[0]);
		     i++) {
			json_int_t v;

			if (strcmp(key, numeric_keys[i].key) != 0)
				continue;
			found = 1;
			if (!json_is_integer(value)) {
				cg_errors_add(errs, path, vl, vc,
				              "\"%s\" must be an integer", key);
				break;
			}
			v = json_integer_value(value);
			if (v < 0 || (uint64_t)v < numeric_keys[i].min ||
			    (uint64_t)v > numeric_keys[i].max) {
				cg_errors_add(
				    errs, path, vl, vc,
				    "\"%s\" is %lld; it must be between %llu "
				    "and %llu",
				    key, (long long)v,
				    (unsigned long long)numeric_keys[i].min,
				    (unsigned long long)numeric_keys[i].max);
				break;
			}
			if (numeric_keys[i].is_size)
				*(size_t *)((char *)cfg +
				            numeric_keys[i].offset) = (size_t)v;
			else
				*(unsigned *)((char *)cfg +
				              numeric_keys[i].offset) =
				    (unsigned)v;
		}
		if (!found)
			cg_errors_add(errs, path, kl, kc,
			              "unknown setting \"%s\"", key);
	}
out:
	jsonpos_free(pos);
	json_decref(root);
	free(text);
	return errs->count == before ? 0 : -1;
}

int
config_parse_hostport(const char *s, struct sockaddr_storage *ss,
                      socklen_t *len, const char **err)
{
	char host[256];
	const char *colon, *port;
	struct addrinfo hints, *res = NULL;
	size_t hlen;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':') {
			*err = "expected [IPv6]:PORT";
			return -1;
		}
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host)) {
			*err = "host is too long";
			return -1;
		}
		memcpy(host, s + 1, hlen);
		port = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			*err = "expected HOST:PORT";
			return -1;
		}
		hlen = (size_t)(colon - s);
		if (hlen == 0 || hlen >= sizeof(host)) {
			*err = hlen ? "host is too long" : "expected HOST:PORT";
			return -1;
		}
		memcpy(host, s, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';
	p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || p < 0 || p > 65535) {
		*err = "the port must be a number from 0 to 65535";
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
		*err = "cannot resolve the host";
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

bool
config_same_listener(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
	bool any_a, any_b, same;
	int pa, pb;

	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a,
		                         *y = (const void *)b;

		pa = ntohs(x->sin_port);
		pb = ntohs(y->sin_port);
		any_a = x->sin_addr.s_addr == htonl(INADDR_ANY);
		any_b = y->sin_addr.s_addr == htonl(INADDR_ANY);
		same = x->sin_addr.s_addr == y->sin_addr.s_addr;
	} else {
		const struct sockaddr_in6 *x = (const void *)a,
		                          *y = (const void *)b;

		pa = ntohs(x->sin6_port);
		pb = ntohs(y->sin6_port);
		any_a = memcmp(&x->sin6_addr, &any6, sizeof(any6)) == 0;
		any_b = memcmp(&y->sin6_addr, &any6, sizeof(any6)) == 0;
		same = memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(any6)) == 0;
	}
	/* port 0 is a fresh port each time: never the same */
	return pa != 0 && pa == pb && (same || any_a || any_b);
}

/* --upstream http://HOST[:PORT] or https://HOST[:PORT], no path. */
static void
config_resolve_upstream(struct config *cfg, struct cg_errors *errs)
{
	char hostport[300];
	const char *rest, *err;
	size_t n;

	if (cfg->upstream == NULL) {
		cg_errors_add(errs, "--upstream", 0, 0,
		              "missing: give the upstream as http://HOST:PORT "
		              "or https://HOST:PORT");
		return;
	}
	if (strncmp(cfg->upstream, "http://", 7) == 0) {
		rest = cfg->upstream + 7;
	} else if (strncmp(cfg->upstream, "https://", 8) == 0) {
		rest = cfg->upstream + 8;
		cfg->upstream_tls = true;
	} else {
		cg_errors_add(errs, "--upstream", 0, 0,
		              "'%s': only http:// and https:// upstreams are "
		              "supported",
		              cfg->upstream);
		return;
	}
	n = strcspn(rest, "/");
	if (rest[n] == '/' && rest[n + 1] != '\0')
		cg_errors_add(errs, "--upstream", 0, 0,
		              "'%s': a path is not supported; requests "
		              "keep their own path",
		              cfg->upstream);
	if (n == 0 || n >= sizeof(hostport) - 6) {
		cg_errors_add(errs, "--upstream", 0, 0, "'%s': %s",
		              cfg->upstream,
		              n ? "the host is too long" : "no host");
		return;
	}
	memcpy(hostport, rest, n);
	hostport[n] = '\0';
	if (strchr(hostport, ':') == NULL || hostport[n - 1] == ']')
		snprintf(hostport + n, sizeof(hostport) - n,
		         cfg->upstream_tls ? ":443" : ":80");
	snprintf(cfg->upstream_hostport, sizeof(cfg->upstream_hostport), "%s",
	         hostport);
	/* the bare host, without brackets or port: SNI and the name the
	   certificate must carry */
	{
		const char *h = hostport, *end = strrchr(hostport, ':');

		if (h[0] == '[') {
			h++;
			end = strchr(h, ']');
		}
		snprintf(cfg->upstream_host, sizeof(cfg->upstream_host), "%.*s",
		         (int)(end - h), h);
	}
	if (config_parse_hostport(hostport, &cfg->upstream_addr,
	                          &cfg->upstream_addrlen, &err) != 0)
		cg_errors_add(errs, "--upstream", 0, 0, "'%s': %s",
		              cfg->upstream, err);
}

/* The TLS files come in the pairs and with the sides they belong to. */
static void
config_resolve_tls(struct config *cfg, struct cg_errors *errs)
{
	if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL))
		cg_errors_add(errs, cfg->tls_cert ? "--tls-key" : "--tls-cert",
		              0, 0,
		              "missing: TLS needs both --tls-cert and "
		              "--tls-key");
	if (cfg->tls_client_ca != NULL && cfg->tls_cert == NULL)
		cg_errors_add(errs, "--tls-client-ca", 0, 0,
		              "client certificates need TLS: give --tls-cert "
		              "and --tls-key too");
	if ((cfg->upstream_cert == NULL) != (cfg->upstream_key == NULL))
		cg_errors_add(
		    errs,
		    cfg->upstream_cert ? "--upstream-key" : "--upstream-cert",
		    0, 0,
		    "missing: a client certificate for the upstream needs both "
		    "--upstream-cert and --upstream-key");
	if (!cfg->upstream_tls && cfg->upstream != NULL &&
	    (cfg->upstream_ca || cfg->upstream_cert))
		cg_errors_add(errs,
		              cfg->upstream_ca ? "--upstream-ca"
		                               : "--upstream-cert",
		              0, 0,
		              "the upstream '%s' is not https://: its TLS "
		              "settings would be ignored",
		              cfg->upstream);
}

/* The decision log's key (refused at start unless readable and long
   enough) and full-queue mode. */
static void
config_resolve_logs(const struct config *cfg, struct cg_errors *errs)
{
	if (cfg->decision_log_full != NULL &&
	    strcmp(cfg->decision_log_full, "refuse") != 0 &&
	    strcmp(cfg->decision_log_full, "drop") != 0)
		cg_errors_add(errs, "decision_log_full", 0, 0,
		              "'%s': must be \"refuse\" or \"drop\"",
		              cfg->decision_log_full);
	if (cfg->decision_log_key != NULL) {
		unsigned char *key = malloc(PSEUDONYM_KEY_MAX);
		char why[512];
		size_t len;

		if (cfg->decision_log == NULL)
			cg_errors_add(errs, "--decision-log-key", 0, 0,
			              "needs --decision-log");
		else if (key == NULL)
			cg_errors_add(errs, "--decision-log-key", 0, 0,
			              "out of memory");
		else if (pseudonym_read_key(cfg->decision_log_key, key, &len,
		                            why, sizeof(why)) != 0)
			cg_errors_add(errs, "--decision-log-key", 0, 0, "%s",
			              why);
		if (key != NULL)
			memset(key, 0, PSEUDONYM_KEY_MAX);
		free(key);
	}
}

int
config_resolve(struct config *cfg, struct cg_errors *errs)
{
	const char *err;
	unsigned before = errs->count;

	if (cfg->listen == NULL)
		cfg->listen = strdup("127.0.0.1:8000");
	if (config_parse_hostport(cfg->listen, &cfg->listen_addr,
	                          &cfg->listen_addrlen, &err) != 0)
		cg_errors_add(errs, "--listen", 0, 0, "'%s': %s", cfg->listen,
		              err);
	config_resolve_upstream(cfg, errs);
	config_resolve_tls(cfg, errs);
	if (cfg->admin != NULL &&
	    config_parse_hostport(cfg->admin, &cfg->admin_addr,
	                          &cfg->admin_addrlen, &err) != 0)
		cg_errors_add(errs, "--admin", 0, 0, "'%s': %s", cfg->admin,
		              err);
	else if (cfg->admin != NULL && errs->count == before &&
	         config_same_listener(&cfg->listen_addr, &cfg->admin_addr))
		cg_errors_add(errs, "--admin", 0, 0,
		              "'%s' is also the --listen address '%s': give "
		              "the admin listener an address of its own",
		              cfg->admin, cfg->listen);
	if (cfg->policy_path == NULL)
		cg_errors_add(errs, "--policy", 0, 0,
		              "missing: give the rule file");
	if (cfg->consent_path == NULL)
		cg_errors_add(
		    errs, "--consent", 0, 0,
		    "missing: give the consent table (CSV or snapshot)");
	if (cfg->max_header_count > CG_MAX_HEADERS)
		cfg->max_header_count = CG_MAX_HEADERS;
	config_resolve_logs(cfg, errs);
	return errs->count == before ? 0 : -1;
}
