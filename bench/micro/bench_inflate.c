/*
 * bench_inflate.c: gzip inflate speed on the scanner benchmarks' NDJSON
 * (bench_tweets.h), compressed once by zlib at level 6 as a client's gzip
 * would: zlib, and ISA-L's igzip (the proxy's inflater) both into one
 * buffer and into 64 KiB windows. Prints "inflate<TAB>name<TAB>MB/s of
 * inflated data<TAB>MB/s of compressed data", medians of CPU time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include "bench_tweets.h"

#define BENCH_BYTES (16u << 20) /* bytes of generated NDJSON */
#define BENCH_RUNS 5            /* runs per contender; the median counts */
#define WINDOW (64u << 10)

static size_t
run_zlib(const unsigned char *z, size_t zlen, unsigned char *out, size_t cap,
         size_t window)
{
	z_stream zs;
	size_t total = 0;
	int zrc = Z_OK;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return 0;
	zs.next_in = (unsigned char *)(uintptr_t)z;
	zs.avail_in = (uInt)zlen;
	while (zrc == Z_OK) {
		size_t w = window ? window : cap - total;

		zs.next_out = window ? out : out + total;
		zs.avail_out = (uInt)w;
		zrc = inflate(&zs, Z_NO_FLUSH);
		total += w - zs.avail_out;
	}
	inflateEnd(&zs);
	return zrc == Z_STREAM_END ? total : 0;
}

static size_t
run_isal(const unsigned char *z, size_t zlen, unsigned char *out, size_t cap,
         size_t window)
{
	static struct inflate_state st;
	size_t total = 0;

	isal_inflate_init(&st);
	st.crc_flag = ISAL_GZIP;
	st.next_in = (uint8_t *)(uintptr_t)z;
	st.avail_in = (uint32_t)zlen;
	while (st.block_state != ISAL_BLOCK_FINISH) {
		size_t w = window ? window : cap - total;

		st.next_out = window ? out : out + total;
		st.avail_out = (uint32_t)w;
		if (isal_inflate(&st) != ISAL_DECOMP_OK || w == st.avail_out)
			return 0;
		total += w - st.avail_out;
	}
	return total;
}

typedef size_t (*inflate_fn)(const unsigned char *, size_t, unsigned char *,
                             size_t, size_t);

static int
bench(const char *name, inflate_fn fn, const unsigned char *z, size_t zlen,
      unsigned char *out, size_t cap, size_t window, size_t want)
{
	double t[BENCH_RUNS], med;

	for (int i = 0; i < BENCH_RUNS; i++) {
		double t0 = bench_now();
		size_t n = fn(z, zlen, out, cap, window);

		t[i] = bench_now() - t0;
		if (n != want) {
			fprintf(stderr, "%s: %zu bytes, not %zu\n", name, n,
			        want);
			return -1;
		}
	}
	qsort(t, BENCH_RUNS, sizeof(t[0]), bench_cmp_double);
	med = t[BENCH_RUNS / 2];
	printf("inflate\t%s\t%.1f\t%.1f\n", name, (double)want / med / 1e6,
	       (double)zlen / med / 1e6);
	fflush(stdout);
	return 0;
}

int
main(void)
{
	size_t cap = BENCH_BYTES + 4096, len, zcap, zlen;
	char *buf = malloc(cap);
	unsigned char *z = NULL, *out = malloc(cap);
	z_stream zs;
	int rc = 1;

	memset(&zs, 0, sizeof(zs));
	if (buf == NULL || out == NULL)
		goto done;
	len = gen_records(buf, cap, BENCH_BYTES);
	zcap = len + len / 10 + 1024;
	if ((z = malloc(zcap)) == NULL ||
	    deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8,
	                 Z_DEFAULT_STRATEGY) != Z_OK)
		goto done;
	zs.next_in = (unsigned char *)buf;
	zs.avail_in = (uInt)len;
	zs.next_out = z;
	zs.avail_out = (uInt)zcap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		goto done;
	zlen = zcap - zs.avail_out;
	fprintf(stderr, "%zu bytes of NDJSON, %zu of gzip (level 6)\n", len,
	        zlen);
	if (bench("zlib", run_zlib, z, zlen, out, cap, 0, len) < 0 ||
	    bench("zlib-64k-window", run_zlib, z, zlen, out, cap, WINDOW, len) <
	        0 ||
	    bench("isal", run_isal, z, zlen, out, cap, 0, len) < 0 ||
	    bench("isal-64k-window", run_isal, z, zlen, out, cap, WINDOW, len) <
	        0)
		goto done;
	rc = 0;
done:
	deflateEnd(&zs);
	free(z);
	free(out);
	free(buf);
	return rc;
}
