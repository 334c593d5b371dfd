/*
 * bench_simdjson: simdjson on the NDJSON bench_scan reads (bench_tweets.h,
 * same seed, same bytes), for a side by side with our scanner.
 *
 * Two contenders, median of 5 runs each, this thread's CPU time:
 *   ondemand  iterate_many; each record's author_id read as a string.
 *             On-Demand validates what it reads and skips the rest without
 *             validating it all: less than our scanner does.
 *   dom       parse_many: every record parsed whole, fully validated (the
 *             closest to our scanner's work, which also applies the
 *             reader-safety rules and builds no tree).
 * Options: --ascii, --mib N, as bench_scan. Output, one line each:
 * scan\tsimdjson-<name>\t<MB/s>\t<records/s>; simdjson's kernel on stderr.
 * Built by `make micro` when Debian's libsimdjson-dev is installed.
 */
#include <algorithm>
#include <cstring>
#include <ctime>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "bench_tweets.h"

static double
now()
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t
run_ondemand(const simdjson::padded_string &buf)
{
	simdjson::ondemand::parser parser;
	simdjson::ondemand::document_stream docs;
	size_t n = 0, idlen = 0;

	if (parser.iterate_many(buf, 1 << 20).get(docs))
		return 0;
	for (auto doc : docs) {
		std::string_view id;

		if (doc["author_id"].get_string().get(id))
			return 0;
		idlen += id.size();
		n++;
	}
	return idlen > 0 ? n : 0;
}

static size_t
run_dom(const simdjson::padded_string &buf)
{
	simdjson::dom::parser parser;
	simdjson::dom::document_stream docs;
	size_t n = 0;

	if (parser.parse_many(buf, 1 << 20).get(docs))
		return 0;
	for (auto doc : docs) {
		std::string_view id;

		if (doc["author_id"].get_string().get(id))
			return 0;
		n++;
	}
	return n;
}

static int
bench(const char *name, size_t (*fn)(const simdjson::padded_string &),
      const simdjson::padded_string &buf)
{
	std::vector<double> t;
	size_t n = 0;

	for (int i = 0; i < 5; i++) {
		double t0 = now();

		n = fn(buf);
		t.push_back(now() - t0);
		if (n == 0) {
			std::fprintf(stderr, "%s: failed\n", name);
			return -1;
		}
	}
	std::sort(t.begin(), t.end());
	std::printf("scan\tsimdjson-%s\t%.1f\t%.0f\n", name,
	            (double)buf.size() / t[2] / 1e6, (double)n / t[2]);
	std::fflush(stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	size_t want = 64u << 20, len;
	std::vector<char> raw;

	for (int i = 1; i < argc; i++) {
		if (std::strcmp(argv[i], "--ascii") == 0)
			nwords = 14;
		else if (std::strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
			want = (size_t)std::strtoul(argv[++i], nullptr, 10)
			       << 20;
	}
	raw.resize(want + 4096);
	len = gen_records(raw.data(), raw.size(), want);

	simdjson::padded_string buf(raw.data(), len);

	std::fprintf(stderr, "generated %zu bytes, simdjson kernel %s\n", len,
	             simdjson::get_active_implementation()->name().c_str());
	return bench("ondemand", run_ondemand, buf) < 0 ||
	               bench("dom", run_dom, buf) < 0
	           ? 1
	           : 0;
}
