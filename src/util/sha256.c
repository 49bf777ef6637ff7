/*
 * SHA-256 as FIPS 180-4 section 6.2 describes it: 512-bit blocks, a
 * 64-word message schedule, big-endian words, and padding with a 1 bit,
 * zeros and the 64-bit message length in bits. Two block functions: plain
 * C everywhere, and the x86 SHA extensions where the processor has them.
 */
#include "util/sha256.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BNF_SHA256_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define BNF_SHA256_X86 0
#endif

/* The first 32 bits of the fractional parts of the cube roots of the
 * first 64 primes (FIPS 180-4, 4.2.2). Aligned so that the x86 path can
 * read four of them as one vector. */
static _Alignas(16) const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Consumes nblocks whole 64-byte blocks at p (any alignment). */
typedef void (*bnf_sha256_blocks_fn)(uint32_t state[8], const uint8_t *p, size_t nblocks);

/* ---- portable C ---- */

static inline uint32_t rotr(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The logical functions of FIPS 180-4, 4.1.2. */
#define CHOOSE(x, y, z)   ((z) ^ ((x) & ((y) ^ (z))))
#define MAJORITY(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define BIG_SIGMA0(x)     (rotr((x), 2) ^ rotr((x), 13) ^ rotr((x), 22))
#define BIG_SIGMA1(x)     (rotr((x), 6) ^ rotr((x), 11) ^ rotr((x), 25))
#define SMALL_SIGMA0(x)   (rotr((x), 7) ^ rotr((x), 18) ^ ((x) >> 3))
#define SMALL_SIGMA1(x)   (rotr((x), 17) ^ rotr((x), 19) ^ ((x) >> 10))

/*
 * One round with the eight working variables named in their current roles.
 * Rather than shifting a..h down by one each round, the caller rotates the
 * names: only d and h take new values.
 */
#define ROUND(a, b, c, d, e, f, g, h, i)                                                           \
	do {                                                                                       \
		uint32_t t1_ = (h) + BIG_SIGMA1(e) + CHOOSE(e, f, g) + round_constants[i] + w[i];  \
		(d) += t1_;                                                                        \
		(h) = t1_ + BIG_SIGMA0(a) + MAJORITY(a, b, c);                                     \
	} while (0)

static void blocks_portable(uint32_t state[8], const uint8_t *p, size_t nblocks)
{
	uint32_t w[64];
	int i;

	for (; nblocks > 0; nblocks--, p += 64) {
		uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
		uint32_t e = state[4], f = state[5], g = state[6], h = state[7];

		for (i = 0; i < 16; i++)
			w[i] = load_be32(p + 4 * i);
		for (i = 16; i < 64; i++)
			w[i] =
			    SMALL_SIGMA1(w[i - 2]) + w[i - 7] + SMALL_SIGMA0(w[i - 15]) + w[i - 16];
		/* Eight rounds bring every name back to its starting role. */
		for (i = 0; i < 64; i += 8) {
			ROUND(a, b, c, d, e, f, g, h, i);
			ROUND(h, a, b, c, d, e, f, g, i + 1);
			ROUND(g, h, a, b, c, d, e, f, i + 2);
			ROUND(f, g, h, a, b, c, d, e, i + 3);
			ROUND(e, f, g, h, a, b, c, d, i + 4);
			ROUND(d, e, f, g, h, a, b, c, i + 5);
			ROUND(c, d, e, f, g, h, a, b, i + 6);
			ROUND(b, c, d, e, f, g, h, a, i + 7);
		}
		state[0] += a;
		state[1] += b;
		state[2] += c;
		state[3] += d;
		state[4] += e;
		state[5] += f;
		state[6] += g;
		state[7] += h;
	}
}

#undef ROUND

/* ---- x86-64 SHA extensions ---- */

#if BNF_SHA256_X86
/*
 * Only these functions are compiled for the SHA extensions; the rest of
 * the program stays baseline x86-64, and cpu_has_sha() decides at run time
 * whether they may be called.
 *
 * SHA256RNDS2 does two rounds. It keeps the state in two registers, one
 * holding A, B, E, F and the other C, D, G, H (A and C in the top lane, F
 * and H in the bottom one), and takes W + K for its two rounds from the low
 * two lanes of a third register. Two rounds turn the old ABEF into the new
 * CDGH, so a pair of calls that swap their first two arguments does four
 * rounds and leaves each register in its role again.
 */
#define SHA_TARGET __attribute__((target("sha,sse4.1")))

/* Four rounds from round 'first', with the four message words in msg. */
SHA_TARGET static inline void rounds4_sha(__m128i *abef, __m128i *cdgh, __m128i msg, int first)
{
	__m128i k = _mm_load_si128((const __m128i *)(const void *)&round_constants[first]);
	__m128i wk = _mm_add_epi32(msg, k);

	*cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);
	/* The upper two W + K move down for the second pair of rounds. */
	*abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e));
}

/*
 * The next four schedule words W[t..t+3] from the sixteen before them,
 * w0 = W[t-16..t-13] up to w3 = W[t-4..t-1]. SHA256MSG1 adds sigma0 of the
 * following word to each of W[t-16..t-13]; the W[t-7..t-4] term is a
 * window straddling w2 and w3; SHA256MSG2 adds sigma1 of W[t-2] (which for
 * the last two lanes are words it has only just made itself).
 */
SHA_TARGET static inline __m128i schedule4_sha(__m128i w0, __m128i w1, __m128i w2, __m128i w3)
{
	__m128i partial = _mm_sha256msg1_epu32(w0, w1);

	partial = _mm_add_epi32(partial, _mm_alignr_epi8(w3, w2, 4));
	return _mm_sha256msg2_epu32(partial, w3);
}

SHA_TARGET static void blocks_sha(uint32_t state[8], const uint8_t *p, size_t nblocks)
{
	/* Reverses the bytes of each 32-bit lane: message words are big-endian. */
	const __m128i bswap32 = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
	__m128i lo, hi, abef, cdgh;

	/* state[0..3] = A..D and state[4..7] = E..H, lane 0 first; reversing
	 * each puts D..A and H..E in lanes 0..3, whose halves recombine into
	 * the F, E, B, A and H, G, D, C orders the instructions want. */
	lo = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)&state[0]), 0x1b);
	hi = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(const void *)&state[4]), 0x1b);
	abef = _mm_unpackhi_epi64(hi, lo);
	cdgh = _mm_unpacklo_epi64(hi, lo);

	for (; nblocks > 0; nblocks--, p += 64) {
		__m128i abef_in = abef, cdgh_in = cdgh;
		__m128i w0, w1, w2, w3, next;
		int r;

		w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), bswap32);
		w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)),
		                      bswap32);
		w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 32)),
		                      bswap32);
		w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)),
		                      bswap32);
		rounds4_sha(&abef, &cdgh, w0, 0);
		rounds4_sha(&abef, &cdgh, w1, 4);
		rounds4_sha(&abef, &cdgh, w2, 8);
		rounds4_sha(&abef, &cdgh, w3, 12);
		for (r = 16; r < 64; r += 4) {
			next = schedule4_sha(w0, w1, w2, w3);
			w0 = w1;
			w1 = w2;
			w2 = w3;
			w3 = next;
			rounds4_sha(&abef, &cdgh, next, r);
		}
		abef = _mm_add_epi32(abef, abef_in);
		cdgh = _mm_add_epi32(cdgh, cdgh_in);
	}

	/* Back to A..D and E..H: the high halves hold D, C and B, A, the low
	 * halves H, G and F, E. */
	lo = _mm_shuffle_epi32(_mm_unpackhi_epi64(cdgh, abef), 0x1b);
	hi = _mm_shuffle_epi32(_mm_unpacklo_epi64(cdgh, abef), 0x1b);
	_mm_storeu_si128((__m128i *)(void *)&state[0], lo);
	_mm_storeu_si128((__m128i *)(void *)&state[4], hi);
}

#undef SHA_TARGET

/* CPUID leaf 7 subleaf 0, EBX bit 29: SHA; leaf 1 ECX bits 9 and 19: the
 * SSSE3 and SSE4.1 shuffles used around it. (clang 14 does not accept
 * "sha" in __builtin_cpu_supports, so ask the processor directly.) */
static int cpu_has_sha(void)
{
	unsigned int eax, ebx, ecx, edx;

	if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
		return 0;
	if (!(ecx & (1u << 9)) || !(ecx & (1u << 19)))
		return 0;
	if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
		return 0;
	return (ebx >> 29) & 1;
}
#endif /* BNF_SHA256_X86 */

/* ---- choosing a block function ---- */

enum sha256_impl { SHA256_IMPL_UNKNOWN, SHA256_IMPL_PORTABLE, SHA256_IMPL_SHA_NI };

/*
 * Chosen on first use and kept. The choice is the same whichever thread
 * makes it, so a relaxed atomic is enough to keep concurrent first calls
 * well defined.
 *
 * Testing knob: BNF_SHA256_PORTABLE=1 in the environment forces the plain C
 * block function, so that the test suite can compare both paths with an
 * independent SHA-256 on the same machine.
 */
static bnf_sha256_blocks_fn sha256_blocks(void)
{
	static atomic_int chosen = SHA256_IMPL_UNKNOWN;
	int impl = atomic_load_explicit(&chosen, memory_order_relaxed);

	if (impl == SHA256_IMPL_UNKNOWN) {
		const char *force = getenv("BNF_SHA256_PORTABLE");

		impl = SHA256_IMPL_PORTABLE;
#if BNF_SHA256_X86
		if (!(force && strcmp(force, "1") == 0) && cpu_has_sha())
			impl = SHA256_IMPL_SHA_NI;
#else
		(void)force;
#endif
		atomic_store_explicit(&chosen, impl, memory_order_relaxed);
	}
#if BNF_SHA256_X86
	if (impl == SHA256_IMPL_SHA_NI)
		return blocks_sha;
#endif
	return blocks_portable;
}

/* ---- the incremental interface ---- */

void bnf_sha256_init(struct bnf_sha256 *h)
{
	/* Square roots of the first 8 primes, fractional bits (4.2.2 / 5.3.3). */
	static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(h->state, initial, sizeof(initial));
	h->total = 0;
	h->used = 0;
}

void bnf_sha256_update(struct bnf_sha256 *h, const void *data, size_t len)
{
	const uint8_t *p = data;
	bnf_sha256_blocks_fn blocks;
	size_t whole;

	if (len == 0)
		return;
	h->total += len;
	/* Small pieces (protobuf-c appends field by field) only fill the
	 * buffer. */
	if (h->used + len < 64) {
		memcpy(h->block + h->used, p, len);
		h->used += len;
		return;
	}
	blocks = sha256_blocks();
	if (h->used > 0) {
		size_t take = 64 - h->used;

		memcpy(h->block + h->used, p, take);
		blocks(h->state, h->block, 1);
		h->used = 0;
		p += take;
		len -= take;
	}
	/* Whole blocks straight from the caller's buffer. */
	whole = len / 64;
	if (whole > 0) {
		blocks(h->state, p, whole);
		p += whole * 64;
		len -= whole * 64;
	}
	memcpy(h->block, p, len);
	h->used = len;
}

void bnf_sha256_hex(struct bnf_sha256 *h, char hex[65])
{
	uint64_t bits = h->total * 8;
	bnf_sha256_blocks_fn blocks = sha256_blocks();
	int i;

	/* A 1 bit, zeros up to 56 bytes into a block, then the length in bits
	 * as a big-endian 64-bit number; a second block when the length does
	 * not fit after the 1 bit. */
	h->block[h->used++] = 0x80;
	if (h->used > 56) {
		memset(h->block + h->used, 0, 64 - h->used);
		blocks(h->state, h->block, 1);
		h->used = 0;
	}
	memset(h->block + h->used, 0, 56 - h->used);
	for (i = 0; i < 8; i++)
		h->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	blocks(h->state, h->block, 1);
	h->used = 0;
	for (i = 0; i < 8; i++)
		snprintf(hex + 8 * i, 9, "%08x", (unsigned)h->state[i]);
}

void bnf_sha256_of(const void *buf, size_t len, char hex[65])
{
	struct bnf_sha256 h;
	bnf_sha256_init(&h);
	bnf_sha256_update(&h, buf, len);
	bnf_sha256_hex(&h, hex);
}

int bnf_sha256_file(const char *path, char hex[65])
{
	struct bnf_sha256 h;
	unsigned char chunk[1 << 16];
	size_t n;
	FILE *f = fopen(path, "rb");
	int rc = 0;

	hex[0] = '\0';
	if (!f)
		return -1;
	bnf_sha256_init(&h);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		bnf_sha256_update(&h, chunk, n);
	if (ferror(f))
		rc = -1;
	else
		bnf_sha256_hex(&h, hex);
	fclose(f);
	return rc;
}
