/*
 * demo.c: `consentgate demo`: the proxy on the example policy and consent
 * table, in front of a small upstream of its own that prints what reaches
 * it, so a newcomer sees what consentgate forwards and what it drops.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <sys/queue.h>
#include <signal.h>

#include <event2/keyvalq_struct.h>

#include "cmd_internal.h"
#include "proxy_internal.h"
#include "declog_internal.h"
#include "serve_internal.h"

#define DEMO_POLICY "policy/examples/ai-training.json"
#define DEMO_CONSENT "tests/data/consent-example.csv"

/* "HOST:0": the kernel picks the port */
static bool
ends_with_port0(const char *hostport)
{
	size_t n = strlen(hostport);

	return n >= 2 && strcmp(hostport + n - 2, ":0") == 0;
}

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

/* The upstream: print the request, answer 200 with what arrived. */
static void
on_demo_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
	struct evbuffer *reply = evbuffer_new();
	size_t len = evbuffer_get_length(in);
	struct evkeyval *kv;
	unsigned lines = 0;

	pthread_mutex_lock(&print_lock);
	printf("\n--- upstream received %s %s (%zu body bytes)\n",
	       evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET"
	                                                         : "POST",
	       evhttp_request_get_uri(req), len);
	TAILQ_FOREACH(kv, hdrs, next)
	if (strncasecmp(kv->key, "consent-", 8) == 0 ||
	    strcasecmp(kv->key, "content-usage") == 0)
		printf("    %s: %s\n", kv->key, kv->value);
	if (len > 0) {
		const char *b = (const char *)evbuffer_pullup(in, -1);

		for (size_t i = 0; i < len; i++)
			lines += b[i] == '\n';
		printf("%.*s%s", (int)(len < 4096 ? len : 4096), b,
		       len && b[len - 1] != '\n' ? "\n" : "");
	}
	printf("---\n");
	fflush(stdout);
	pthread_mutex_unlock(&print_lock);
	evbuffer_add_printf(reply,
	                    "{\"received_bytes\":%zu,\"received_lines\":%u}\n",
	                    len, lines);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	                  "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", reply);
	evbuffer_free(reply);
}

static void *
demo_upstream_main(void *arg)
{
	event_base_dispatch(arg);
	return NULL;
}

int
cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"upstream-listen", required_argument, NULL, 'u'},
	    {"admin", required_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *listen = "127.0.0.1:8000", *up_listen = "127.0.0.1:8080";
	const char *admin = "127.0.0.1:8001";
	char up_url[300], *host, *colon;
	struct config cfg;
	struct event_base *ub;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct snapshot *snap;
	pthread_t th;
	int ch, port, rc;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			listen = optarg;
			break;
		case 'u':
			up_listen = optarg;
			break;
		case 'a':
			admin = optarg;
			break;
		case 'h':
			printf("usage: consentgate demo [--listen HOST:PORT] "
			       "[--upstream-listen HOST:PORT]\n"
			       "                        [--admin "
			       "HOST:PORT|off]\n\n"
			       "Runs consentgate on %s with %s, in front of a\n"
			       "demo upstream that prints every request that "
			       "reaches it.\n",
			       DEMO_POLICY, DEMO_CONSENT);
			return 0;
		default:
			fprintf(
			    stderr,
			    "consentgate demo: unknown option (see --help)\n");
			return 2;
		}
	}
	if (access(DEMO_POLICY, R_OK) != 0 || access(DEMO_CONSENT, R_OK) != 0) {
		fprintf(stderr,
		        "consentgate demo: run it from the repository root "
		        "(it reads %s and %s)\n",
		        DEMO_POLICY, DEMO_CONSENT);
		return 1;
	}
	host = strdup(up_listen);
	colon = strrchr(host, ':');
	if (colon == NULL) {
		fprintf(stderr, "--upstream-listen: expected HOST:PORT\n");
		free(host);
		return 2;
	}
	*colon = '\0';
	port = atoi(colon + 1);
	evthread_use_pthreads(); /* before any base: loopexit comes from another
	                            thread */
	ub = event_base_new();
	http = evhttp_new(ub);
	bound = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
	if (bound == NULL) {
		fprintf(stderr,
		        "consentgate demo: cannot listen on %s for the demo "
		        "upstream\n",
		        up_listen);
		free(host);
		return 1;
	}
	if (port == 0) {
		/* an ephemeral port: tell the proxy the one the kernel chose */
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		getsockname(evhttp_bound_socket_get_fd(bound),
		            (struct sockaddr *)&ss, &sl);
		port = ntohs(ss.ss_family == AF_INET6
		                 ? ((struct sockaddr_in6 *)&ss)->sin6_port
		                 : ((struct sockaddr_in *)&ss)->sin_port);
	}
	evhttp_set_gencb(http, on_demo_request, NULL);
	{
		/* signals belong to the proxy's main thread, not the upstream's
		 */
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
	}
	pthread_create(&th, NULL, demo_upstream_main, ub);
	snprintf(up_url, sizeof(up_url), "http://%s:%d", host, port);
	free(host);

	config_init(&cfg);
	cfg.listen = strdup(listen);
	cfg.upstream = strdup(up_url);
	cfg.policy_path = strdup(DEMO_POLICY);
	cfg.consent_path = strdup(DEMO_CONSENT);
	cfg.workers = 1;
	if (strcmp(admin, "off") != 0)
		cfg.admin = strdup(admin);
	{
		struct cg_errors errs;

		cg_errors_init(&errs);
		if (config_resolve(&cfg, &errs) != 0) {
			for (unsigned i = 0; i < errs.count; i++)
				fprintf(stderr, "%s\n", errs.msgs[i]);
			cg_errors_reset(&errs);
			return 1;
		}
		cg_errors_reset(&errs);
	}
	snap = serve_load(&cfg);
	if (snap == NULL)
		return 1;
	declog_open("-"); /* show the proof next to what the upstream got */
	printf(
	    "consentgate demo: proxy on http://%s, demo upstream on %s\n"
	    "policy %s, consent table %s\n\n"
	    "Try, from another terminal:\n"
	    "  curl -i http://%s/status\n"
	    "  curl -i http://%s/ingest -H 'Content-Type: "
	    "application/x-ndjson' \\\n"
	    "       --data-binary @tests/data/demo-batch.ndjson\n"
	    "  curl http://%s/metrics    (the admin listener)\n\n"
	    "%s"
	    "Each decided request prints its decision-log line (the proof).\n"
	    "Ctrl-C stops it.\n",
	    listen, up_url, DEMO_POLICY, DEMO_CONSENT, listen, listen,
	    cfg.admin ? admin : "(admin off)",
	    ends_with_port0(listen) || ends_with_port0(up_listen) ||
	            (cfg.admin && ends_with_port0(admin))
	        ? "(Port 0: the ports chosen are in the \"listening on\" and "
	          "\"admin on\" lines below.)\n\n"
	        : "");
	fflush(stdout);
	rc = serve_run(&cfg, snap);
	event_base_loopexit(ub, NULL);
	pthread_join(th, NULL);
	evhttp_free(http);
	event_base_free(ub);
	config_reset(&cfg);
	return rc == 0 ? 0 : 1;
}
