/*
 * consent_internal.h: the consent snapshot layout, shared by consent.c and
 * its tests, fuzzer and benchmark (nobody in proxy/ includes it).
 *
 * One layout serves the mmap'ed snapshot and the table built in memory from
 * CSV, so both take the same lookup path. All integers are host order; the
 * header records the byte order and a foreign one is refused.
 *
 *   header (128 bytes)
 *   purposes: npurposes x {u32 off, u32 len} then the NUL-terminated names
 *   slots:    nbuckets x u64, 0 = empty, else tag(24 bits) | blob_off/8
 *   blobs:    one per person, 8-byte aligned:
 *             blob_head, subject bytes (padded to 8), nrows x blob_row
 *             (sorted by purpose id), evidence bytes (padded to 8)
 *
 * A slot is found by linear probing from fastrange(hash, nbuckets); the tag
 * skips most foreign blobs, and the subject bytes in the blob are compared
 * exactly, so a hash collision can never merge two people.
 */
#ifndef CONSENTGATE_CONSENT_INTERNAL_H
#define CONSENTGATE_CONSENT_INTERNAL_H

#include <stdint.h>

#define CONSENT_MAGIC "CGCONSNP"     /* first 8 bytes of a snapshot */
#define CONSENT_FORMAT 1             /* snapshot format version */
#define CONSENT_ENDIAN 0x01020304u   /* byte-order mark */
#define CONSENT_MAX_PURPOSES 255     /* distinct purposes per table */
#define CONSENT_MAX_PURPOSE_LEN 64   /* bytes of a purpose name */
#define CONSENT_MAX_EVIDENCE_LEN 255 /* bytes of an evidence id */
#define CONSENT_LOAD_NUM 4           /* buckets = people * 4 / 3 + 1 */
#define CONSENT_LOAD_DEN 3
#define CONSENT_SLOT_OFF_BITS 40 /* blob offset / 8 in a slot */
#define CONSENT_SLOT_OFF_MASK ((UINT64_C(1) << CONSENT_SLOT_OFF_BITS) - 1)

struct consent_snap_header {
	char magic[8];
	uint32_t format;
	uint32_t header_size;
	uint64_t version;   /* snapshot version (build --version) */
	int64_t created_at; /* unix seconds */
	uint64_t people;
	uint64_t rows;
	uint64_t file_size;
	uint64_t nbuckets;
	uint64_t slots_off;
	uint64_t blobs_off;
	uint64_t blobs_size;
	uint64_t purposes_off;
	uint64_t purposes_size;
	uint32_t npurposes;
	uint32_t endian;
	uint64_t hash_seed;
	uint64_t checksum; /* hash of the bytes before this field */
};

struct consent_blob_head {
	uint16_t subj_len;
	uint8_t nrows;
	char juris[2];
	uint8_t pad[3];
};

struct consent_blob_row {
	int64_t updated_at;
	uint32_t ev_off; /* from the blob's start */
	uint8_t ev_len;
	uint8_t purpose;
	uint8_t status; /* enum consent_status */
	uint8_t pad;
};

_Static_assert(sizeof(struct consent_snap_header) == 128, "header size");
_Static_assert(sizeof(struct consent_blob_head) == 8, "blob head size");
_Static_assert(sizeof(struct consent_blob_row) == 16, "blob row size");

#endif
