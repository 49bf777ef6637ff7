/*
 * The table of the operators tied to the executor: Constant, and the
 * control flow (If, Loop, Scan), which runs subgraphs through it. Data
 * read by the registry.
 */
#include "eval/ctrl_ops.h"

/* Every step is in the shape step; compute has nothing left to do. The
 * steps read ctx->opset where versions differ (Scan's batch axis before
 * 9, Loop's scan outputs of varying shape from 11). */
const struct bnf_op bnf_ops_ctrl[] = {
    {"Constant", 1, 0, bnf_ctrl_constant_shape, bnf_ctrl_done_compute, 0},
    {"If", 1, 0, bnf_ctrl_if_shape, bnf_ctrl_done_compute, 0},
    {"Loop", 1, 0, bnf_ctrl_loop_shape, bnf_ctrl_done_compute, 0},
    {"Scan", 8, 0, bnf_ctrl_scan_shape, bnf_ctrl_done_compute, 0},
    {NULL, 0, 0, NULL, NULL, 0},
};
