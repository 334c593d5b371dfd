/*
 * fuzz_policy.c: libFuzzer driver for the rule-file loader.
 *
 * Any input must either load (and then match, decide and explain without
 * fault) or fail with at least one "name:..." error; never crash, leak or
 * read out of bounds. -DFUZZ_STANDALONE builds a main() that replays the
 * files given as arguments (the corpus as a regression test).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consentgate/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
exercise(const struct policy *p)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "*",
	                                      "post"};
	static const char *const paths[] = {
	    "/", "/ingest",   "/status",          "/ingest/x",
	    "",  "//INGEST/", "/%69ngest;x.json", "/%2569%"};
	struct cg_slice subjects[2] = {CG_SLICE_LIT("1001"), CG_SLICE_LIT("")};
	struct policy_decision d;
	char why[256];

	for (unsigned m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
		for (unsigned i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
			(void)route_match(
			    p,
			    (struct cg_slice){methods[m], strlen(methods[m])},
			    (struct cg_slice){paths[i], strlen(paths[i])},
			    NULL);
	for (unsigned i = 0; i < route_count(p); i++) {
		const struct policy_route *r = route_at(p, i);
		(void)route_name(r);
		(void)route_body_format(r, CG_SLICE_LIT("application/json"),
		                        "{}", 2);
		if (route_action(r) != POLICY_ACTION_INSPECT)
			continue;
		/* no table: everyone is an unknown person */
		for (unsigned n = 0; n <= 2; n++) {
			rule_decide(r, NULL, subjects, n, 1767225600, &d);
			if (d.rule_id == NULL)
				abort();
			rule_explain(r, &d, 1767225600, why, sizeof(why));
		}
	}
	for (unsigned i = 0; i < policy_rule_count(p); i++)
		if (policy_rule_id(p, i) == NULL)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cg_errors errs;
	struct policy *p;

	cg_errors_init(&errs);
	p = policy_load_buf("fuzz.json", (const char *)data, size, &errs);
	if (p != NULL)
		exercise(p);
	else if (errs.count == 0 && errs.dropped == 0)
		abort(); /* a refusal must say why */
	if (p != NULL && strlen(policy_digest(p)) != 16)
		abort();
	policy_free(p);
	cg_errors_reset(&errs);
	return 0;
}

#ifdef FUZZ_STANDALONE
int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		char *buf = NULL;
		size_t len = 0, cap = 0, n;

		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		do {
			if (len == cap) {
				cap = cap ? cap * 2 : 4096;
				buf = realloc(buf, cap);
				if (buf == NULL)
					abort();
			}
			n = fread(buf + len, 1, cap - len, f);
			len += n;
		} while (n > 0);
		fclose(f);
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
	}
	printf("fuzz_policy: %d inputs replayed\n", argc - 1);
	return 0;
}
#endif
