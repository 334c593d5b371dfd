/*
 * fuzz_casefile.c: libFuzzer driver for the case files of consentgate test
 * (proxy/casefile.c), and through them the offline decision (cli_run) on
 * fuzzed requests and bodies.
 *
 * The input is one case file, checked against a fixed policy. Its file
 * names resolve in a fixture directory made at start (a consent CSV, a
 * bad one, a snapshot, NDJSON, array and gzip bodies); an input naming a
 * file outside it (absolute, "..", '/') is rejected, so nothing else on
 * the machine is read. Invariants:
 *  - a file with errors says so with "case.json:" messages whose line and
 *    column lie inside the text;
 *  - a clean file gives cases with a unique non-empty name, a method, a
 *    "/" target, a body, a non-empty expect object and a consent table;
 *  - each case, decided, answers a documented status, forwards nothing on
 *    a refusal or 204, forwards a pass route's body untouched, names a
 *    policy rule for every record, counts kept and dropped records
 *    truly, and forwards exactly the allowed records: the forwarded body
 *    re-read with jansson holds the allowed records (equal values, in
 *    order) and no other.
 *
 * -DFUZZ_STANDALONE builds a main() that replays the files given as args.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "../../proxy/casefile_internal.h"
#include "fuzz_check.h"

#define MAX_RUN 16 /* cases decided per input */
#define JFLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy_text[] =
    "{\"policy\": \"fuzz-cases\",\n"
    " \"purposes\": {\"ai-training\": {\"aipref\": \"train-ai\"}},\n"
    " \"ignored_purposes\": [\"analytics\"],\n"
    " \"jurisdictions\": {\"EEA\": [\"AT\", \"DE\", \"FR\", \"IE\"]},\n"
    " \"routes\": [\n"
    "  {\"method\": \"GET\", \"path\": \"/status\", \"action\": \"pass\"},\n"
    "  {\"name\": \"ingest\", \"method\": \"POST\", \"path\": \"/ingest\",\n"
    "   \"action\": \"inspect\", \"purpose\": \"ai-training\",\n"
    "   \"formats\": [\"ndjson\", \"array\", \"object\"],\n"
    "   \"subjects\": [\"/author_id\"], \"on_deny\": \"drop\"},\n"
    "  {\"name\": \"profile\", \"method\": \"PUT\", \"path_prefix\": "
    "\"/profiles/\",\n"
    "   \"action\": \"inspect\", \"purpose\": \"ai-training\",\n"
    "   \"formats\": [\"object\"], \"subject_header\": \"X-Subject-Id\",\n"
    "   \"on_deny\": \"drop\"},\n"
    "  {\"name\": \"thread\", \"method\": \"POST\", \"path\": \"/threads\",\n"
    "   \"action\": \"inspect\", \"purpose\": \"ai-training\",\n"
    "   \"formats\": [\"array\", \"ndjson\"],\n"
    "   \"subjects\": [\"/author_id\", \"/mentions/*/id\"],\n"
    "   \"on_deny\": \"block\", \"content_usage\": true},\n"
    "  {\"name\": \"batch\", \"method\": \"POST\", \"path_prefix\": "
    "\"/batch/\",\n"
    "   \"action\": \"inspect\", \"purpose\": \"ai-training\",\n"
    "   \"formats\": [\"array_at\"], \"array_at\": \"/data\",\n"
    "   \"subjects\": [\"/author_id\"], \"on_deny\": \"drop\"},\n"
    "  {\"name\": \"poster\", \"method\": \"POST\", \"path\": \"/posts\",\n"
    "   \"action\": \"inspect\", \"purpose\": \"ai-training\",\n"
    "   \"formats\": [\"ndjson\"], \"subjects\": [\"/author_id\"],\n"
    "   \"on_deny\": \"drop\", \"clients\": "
    "[\"uri:spiffe://example.org/poster\",\n"
    "   \"dns:poster.internal\", \"cn:poster\"]}\n"
    " ],\n"
    " \"rules\": [\n"
    "  {\"id\": \"unknown-person\", \"if\": {\"known\": false}, \"then\": "
    "\"deny\"},\n"
    "  {\"id\": \"fresh-grant\", \"if\": {\"status\": [\"granted\"], "
    "\"newer_than\": \"365d\"}, \"then\": \"allow\"},\n"
    "  {\"id\": \"strict-otherwise\", \"if\": {\"jurisdiction\": "
    "[\"EEA\"]}, \"then\": \"deny\"},\n"
    "  {\"id\": \"opted-out\", \"if\": {\"status\": [\"denied\", "
    "\"withdrawn\"]}, \"then\": \"deny\"},\n"
    "  {\"id\": \"default-allow\", \"then\": \"allow\"}\n"
    " ]}\n";

static const char table_csv[] =
    "subject,purpose,status,jurisdiction,updated_at,evidence\n"
    "1001,ai-training,granted,DE,2025-03-01T12:00:00Z,cr-1001\n"
    "1002,ai-training,denied,FR,2025-02-14T09:30:00Z,cr-1002\n"
    "1003,ai-training,granted,AT,2023-01-01T00:00:00Z,cr-1003\n"
    "1006,ai-training,granted,US,2025-02-02T15:00:00Z,cr-1006\n"
    "1007,ai-training,withdrawn,BR,2025-02-03T16:00:00Z,cr-1007\n"
    "1009,analytics,granted,US,2025-02-05T12:00:00Z,cr-1009\n";

static const char ndjson[] = "{\"author_id\":\"1001\",\"t\":1}\n"
                             "{\"author_id\":\"1002\"}\r\n"
                             "\n"
                             "{\"author_id\":\"1006\",\"m\":[{\"id\":1}]}\n"
                             "{\"author_id\":9}\n";

/* the fixture files: name, bytes (NULL: the snapshot or the gzip) */
static const struct {
	const char *name;
	const char *text;
} fixtures[] = {
    {"table.csv", table_csv},
    {"bad.csv", "subject,purpose,status,jurisdiction,updated_at\n"
                "1001,ai-training,maybe,DE,2025-03-01T12:00:00Z\n"
                "1002,ai-training,granted,D,yesterday\n"},
    {"other.csv", "subject,purpose,status,jurisdiction,updated_at\n"
                  "1,analytics,granted,DE,2025-03-01T12:00:00Z\n"},
    {"empty.csv", ""},
    {"body.ndjson", ndjson},
    {"body.json", "[{\"author_id\":\"1001\"},{\"author_id\":\"1002\"},"
                  "{\"author_id\":\"1006\",\"mentions\":[{\"id\":\"1001\"}]}]"},
    {"batch.json", "{\"v\":1,\"data\":[{\"author_id\":\"1001\"},"
                   "{\"author_id\":\"1007\"}],\"n\":2}"},
    {"table.snap", NULL},
    {"body.ndjson.gz", NULL},
};

static char dir[64];
static char case_path[96];
static struct policy *pol;

static void
remove_fixtures(void)
{
	char p[160];

	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, fixtures[i].name);
		unlink(p);
	}
	rmdir(dir);
}

static void
setup(void)
{
	struct cg_errors errs;
	struct consent_table *t;
	char p[160];

	if (pol != NULL)
		return;
	cg_errors_init(&errs);
	pol = policy_load_buf("policy.json", policy_text, strlen(policy_text),
	                      &errs);
	snprintf(dir, sizeof(dir), "%s/cg-fuzz-casefile-XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	CHECK(pol != NULL && mkdtemp(dir) != NULL);
	atexit(remove_fixtures);
	snprintf(case_path, sizeof(case_path), "%s/case.json", dir);
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		FILE *f;

		if (fixtures[i].text == NULL)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, fixtures[i].name);
		CHECK((f = fopen(p, "wb")) != NULL);
		fputs(fixtures[i].text, f);
		CHECK(fclose(f) == 0);
	}
	t = consent_import_csv("table.csv", table_csv, strlen(table_csv),
	                       &errs);
	snprintf(p, sizeof(p), "%s/table.snap", dir);
	CHECK(t != NULL && consent_snapshot_write(t, p, &errs) == 0);
	consent_free(t);
	snprintf(p, sizeof(p), "%s/body.ndjson.gz", dir);
	gzFile gz = gzopen(p, "wb");
	CHECK(gz != NULL);
	CHECK(gzwrite(gz, ndjson, sizeof(ndjson) - 1) > 0);
	CHECK(gzclose(gz) == Z_OK);
	cg_errors_reset(&errs);
}

/* A file name the case file may give: a plain name in the fixture dir. */
static bool
safe_name(json_t *v)
{
	const char *s = json_string_value(v);

	if (s == NULL)
		return true; /* not a name: the loader refuses it */
	if (strlen(s) != json_string_length(v) || strstr(s, "..") != NULL ||
	    s[0] == '\0')
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                 "0123456789._-") == strlen(s);
}

/* Every consent_file and body_file anywhere in v names a fixture file. */
static bool
names_only_fixtures(json_t *v)
{
	const char *key;
	json_t *e;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
		{
			if (!names_only_fixtures(e))
				return false;
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, e)
		{
			if ((strcmp(key, "consent_file") == 0 ||
			     strcmp(key, "body_file") == 0) &&
			    !safe_name(e))
				return false;
			if (!names_only_fixtures(e))
				return false;
		}
	}
	return true;
}

/* Every message is about the case file, at a line and column inside it. */
static void
check_errors(const struct cg_errors *e, const char *text, size_t len)
{
	size_t plen = strlen(case_path);

	CHECK(e->count + e->dropped > 0);
	for (unsigned i = 0; i < e->count; i++) {
		const char *m = e->msgs[i];
		int line = 0, col = 0, n = 0, l = 1;
		size_t at = 0, chars = 0;

		CHECK(strncmp(m, case_path, plen) == 0 && m[plen] == ':');
		if (sscanf(m + plen, ":%d:%d:%n", &line, &col, &n) != 2 ||
		    n == 0)
			continue; /* no position, or a line only */
		for (; at < len && l < line; at++)
			l += text[at] == '\n';
		CHECK(line >= 1 && l == line);
		for (; at < len && text[at] != '\n'; at++)
			chars += ((unsigned char)text[at] & 0xC0) != 0x80;
		CHECK(col >= 1 && (size_t)col <= chars + 1);
	}
}

static bool
rule_known(const char *id)
{
	for (unsigned k = 0; k < policy_rule_count(pol); k++)
		if (strcmp(policy_rule_id(pol, k), id) == 0)
			return true;
	return false;
}

/* The forwarded values of a whole NDJSON, array or object body. */
static json_t *
forwarded_values(const struct cli_result *res)
{
	json_t *all = json_array(), *v;
	size_t pos = 0;

	if (res->v.format == SCAN_FORMAT_ARRAY) {
		json_decref(all);
		return json_loadb(res->out, res->out_len, JFLAGS, NULL);
	}
	if (res->v.format == SCAN_FORMAT_OBJECT) {
		if (res->out_len > 0) {
			v = json_loadb(res->out, res->out_len, JFLAGS, NULL);
			if (v == NULL)
				goto fail;
			json_array_append_new(all, v);
		}
		return all;
	}
	while (pos < res->out_len) { /* NDJSON: every line LF-terminated */
		const char *nl =
		    memchr(res->out + pos, '\n', res->out_len - pos);

		CHECK(nl != NULL);
		v = json_loadb(res->out + pos, (size_t)(nl - (res->out + pos)),
		               JFLAGS, NULL);
		if (v == NULL)
			goto fail;
		json_array_append_new(all, v);
		pos = (size_t)(nl - res->out) + 1;
	}
	return all;
fail:
	json_decref(all);
	return NULL;
}

/* What was forwarded is exactly the allowed records, in order. */
static void
check_forwarded(const struct cli_result *res)
{
	json_t *got, *want = json_array(), *denied = json_array();

	for (unsigned i = 0; i < res->nrecs; i++) {
		const struct cli_record *r = &res->recs[i];
		json_t *v = json_loadb(res->body + r->start, r->end - r->start,
		                       JFLAGS, NULL);

		if (v ==
		    NULL) /* jansson reads it otherwise: fuzz_scan's part */
			goto done;
		json_array_append_new(r->allow ? want : denied, v);
	}
	got = forwarded_values(res);
	if (got == NULL)
		goto done;
	if (!json_equal(got, want)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
		char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);

		fprintf(stderr, "forwarded %s, allowed %s\n", g ? g : "?",
		        w ? w : "?");
		abort();
	}
	json_decref(got);
done:
	json_decref(want);
	json_decref(denied);
}

static void
check_run(const struct casefile_case *tc, const struct cli_result *res)
{
	static const int statuses[] = {200, 204, 400, 403, 404, 405,
	                               413, 414, 415, 422, 500};
	unsigned allowed = 0, known = 0;

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		known += res->status == statuses[i];
	CHECK(known == 1);
	for (unsigned i = 0; i < res->nrecs; i++) {
		const struct cli_record *r = &res->recs[i];

		CHECK(r->start <= r->end && r->end <= res->len);
		CHECK(r->rule_id != NULL && rule_known(r->rule_id));
		CHECK(r->subjects != NULL && r->evidence != NULL);
		allowed += r->allow;
	}
	if (res->status != 200) {
		CHECK(res->out_len == 0); /* nothing forwarded */
		CHECK(res->status != 204 || allowed == 0);
		return;
	}
	CHECK(res->out != NULL && res->route != NULL);
	if (route_action(res->route) == POLICY_ACTION_PASS || res->v.decided) {
		CHECK(res->out_len == tc->len &&
		      memcmp(res->out, tc->body, tc->len) == 0);
		CHECK(!res->v.decided || (res->nrecs == 1 && allowed == 1));
		return;
	}
	CHECK(res->v.kept == allowed && res->v.records == res->nrecs);
	CHECK(res->v.dropped == res->nrecs - allowed);
	if (res->v.format != SCAN_FORMAT_ARRAY_AT)
		check_forwarded(res);
}

static void
check_cases(const struct casefile_set *s)
{
	for (unsigned i = 0; i < s->ncases; i++) {
		const struct casefile_case *tc = &s->cases[i];

		CHECK(tc->name != NULL && tc->name[0] != '\0');
		for (unsigned j = 0; j < i; j++)
			CHECK(strcmp(s->cases[j].name, tc->name) != 0);
		CHECK(tc->method[0] != '\0' && tc->target[0] == '/');
		CHECK(tc->body != NULL && tc->table != NULL);
		CHECK(json_is_object(tc->expect) &&
		      json_object_size(tc->expect) > 0);
		CHECK(tc->nheaders <= CG_MAX_CLI_HEADERS);
	}
	for (unsigned i = 0; i < s->ncases && i < MAX_RUN; i++) {
		const struct casefile_case *tc = &s->cases[i];
		struct cli_request req = {
		    .method = tc->method,
		    .path = tc->target,
		    .headers = tc->headers,
		    .nheaders = tc->nheaders,
		    .body = tc->body,
		    .len = tc->len,
		    .now = tc->now,
		    .client_ids = tc->has_client ? tc->client_ids : NULL};
		struct cli_result res;

		if (cli_run(pol, tc->table, &req, &res) == 0)
			check_run(tc, &res);
		if (getenv("FUZZ_VERBOSE") != NULL)
			fprintf(stderr, "%s: %d, %u records %s\n", tc->name,
			        res.status, res.nrecs, res.error);
		cli_result_reset(&res);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct casefile_set s;
	json_t *root;
	char *text;

	setup();
	root =
	    json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (root != NULL && !names_only_fixtures(root)) {
		json_decref(root);
		return -1; /* would read outside the fixture directory */
	}
	json_decref(root);
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	casefile_set_init(&s, pol);
	CHECK(casefile_load_text(&s, case_path, text, size) == 0);
	if (getenv("FUZZ_VERBOSE") != NULL) /* for writing seeds */
		cli_print_errors(&s.errs);
	if (s.errs.count + s.errs.dropped > 0)
		check_errors(&s.errs, (const char *)data, size);
	else
		check_cases(&s);
	casefile_set_reset(&s);
	return 0;
}

#ifdef FUZZ_STANDALONE
int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		size_t len;
		char *buf = cli_read_file(argv[i], &len);

		if (buf == NULL) {
			perror(argv[i]);
			return 1;
		}
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
	}
	printf("fuzz_casefile: %d inputs replayed\n", argc - 1);
	return 0;
}
#endif
