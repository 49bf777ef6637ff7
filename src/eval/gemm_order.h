/*
 * What decides the order in which the matrix multiply (gemm.c) and the
 * matrix-vector product (gemv.c) sum each output element, shared so that
 * both give the same bits: k is cut into blocks of GEMM_KC from 0; each
 * block's products are summed into a fresh 0 in k order, one fused
 * multiply-add each where the target has FMA; the block sums are added to
 * the element one after the other.
 */
#ifndef BNF_EVAL_GEMM_ORDER_H
#define BNF_EVAL_GEMM_ORDER_H

#define GEMM_KC 256 /* depth of one k block: fixed, it decides the sum order */

/* target_clones needs an ifunc resolver, which runs before AddressSanitizer
 * is initialised: sanitizer builds use the plain code. Both files compile
 * every summing function with this one list, so a CPU picks the same kind
 * (fused or not) for both. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define GEMM_TARGETS                                                                               \
	__attribute__((target_clones("avx512f", "fma", "default"), optimize("fp-contract=fast")))
#else
#define GEMM_TARGETS
#endif

#endif
