/* config.c: settings from a JSON file and the command line, with defaults. */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proxy_internal.h"

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
}

void
config_reset(struct config *cfg)
{
	free(cfg->listen);
	free(cfg->upstream);
	free(cfg->policy_path);
	free(cfg->consent_path);
	free(cfg->decision_log);
	free(cfg->admin);
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
};

static const struct {
	const char *key;
	size_t offset;
} string_keys[] = {
    {"listen", offsetof(struct config, listen)},
    {"upstream", offsetof(struct config, upstream)},
    {"policy", offsetof(struct config, policy_path)},
    {"consent", offsetof(struct config, consent_path)},
    {"decision_log", offsetof(struct config, decision_log)},
    {"admin", offsetof(struct config, admin)},
};

int
config_load_file(struct config *cfg, const char *path, struct cg_errors *errs)
{
	json_error_t jerr;
	json_t *root, *value;
	const char *key;
	unsigned before = errs->count;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		cg_errors_add(errs, path, jerr.line, jerr.column, "%s",
		              jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		cg_errors_add(errs, path, 1, 1,
		              "the configuration must be a JSON object");
		json_decref(root);
		return -1;
	}
	json_object_foreach(root, key, value)
	{
		size_t i;
		int found = 0;

		for (i = 0; i < sizeof(string_keys) / sizeof(string_keys[0]);
		     i++) {
			char **slot;

			if (strcmp(key, string_keys[i].key) != 0)
				continue;
			found = 1;
			if (!json_is_string(value)) {
				cg_errors_add(errs, path, 0, 0,
				              "\"%s\" must be a string", key);
				break;
			}
			slot = (char **)((char *)cfg + string_keys[i].offset);
			free(*slot);
			*slot = strdup(json_string_value(value));
		}
		for (i = 0; !found &&
		            i < sizeof(numeric_keys) / sizeof(numeric_keys[0]);
		     i++) {
			json_int_t v;

			if (strcmp(key, numeric_keys[i].key) != 0)
				continue;
			found = 1;
			if (!json_is_integer(value)) {
				cg_errors_add(errs, path, 0, 0,
				              "\"%s\" must be an integer", key);
				break;
			}
			v = json_integer_value(value);
			if (v < 0 || (uint64_t)v < numeric_keys[i].min ||
			    (uint64_t)v > numeric_keys[i].max) {
				cg_errors_add(
				    errs, path, 0, 0,
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
			cg_errors_add(errs, path, 0, 0,
			              "unknown setting \"%s\"", key);
	}
	json_decref(root);
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

int
config_resolve(struct config *cfg, struct cg_errors *errs)
{
	const char *err, *rest;
	unsigned before = errs->count;

	if (cfg->listen == NULL)
		cfg->listen = strdup("127.0.0.1:8000");
	if (config_parse_hostport(cfg->listen, &cfg->listen_addr,
	                          &cfg->listen_addrlen, &err) != 0)
		cg_errors_add(errs, "--listen", 0, 0, "'%s': %s", cfg->listen,
		              err);
	if (cfg->upstream == NULL) {
		cg_errors_add(errs, "--upstream", 0, 0,
		              "missing: give the upstream as http://HOST:PORT");
	} else if (strncmp(cfg->upstream, "http://", 7) != 0) {
		cg_errors_add(errs, "--upstream", 0, 0,
		              "'%s': only http:// upstreams are supported",
		              cfg->upstream);
	} else {
		char hostport[300];
		size_t n;

		rest = cfg->upstream + 7;
		n = strcspn(rest, "/");
		if (rest[n] == '/' && rest[n + 1] != '\0')
			cg_errors_add(errs, "--upstream", 0, 0,
			              "'%s': a path is not supported; requests "
			              "keep their own path",
			              cfg->upstream);
		if (n >= sizeof(hostport)) {
			cg_errors_add(errs, "--upstream", 0, 0,
			              "the host is too long");
		} else {
			memcpy(hostport, rest, n);
			hostport[n] = '\0';
			if (strchr(hostport, ':') == NULL ||
			    hostport[n - 1] == ']')
				snprintf(hostport + n, sizeof(hostport) - n,
				         ":80");
			snprintf(cfg->upstream_hostport,
			         sizeof(cfg->upstream_hostport), "%s",
			         hostport);
			if (config_parse_hostport(hostport, &cfg->upstream_addr,
			                          &cfg->upstream_addrlen,
			                          &err) != 0)
				cg_errors_add(errs, "--upstream", 0, 0,
				              "'%s': %s", cfg->upstream, err);
		}
	}
	if (cfg->policy_path == NULL)
		cg_errors_add(errs, "--policy", 0, 0,
		              "missing: give the rule file");
	if (cfg->consent_path == NULL)
		cg_errors_add(
		    errs, "--consent", 0, 0,
		    "missing: give the consent table (CSV or snapshot)");
	if (cfg->max_header_count > CG_MAX_HEADERS)
		cfg->max_header_count = CG_MAX_HEADERS;
	return errs->count == before ? 0 : -1;
}
