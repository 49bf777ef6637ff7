/*
 * --train-mode=eval: a pass run before the fold that turns BatchNormalization
 * and Dropout nodes exported in training mode into their eval-mode form, so
 * that they compute with the running statistics (and drop nothing) and the
 * fold can take them.
 */
#ifndef BNF_TRAINMODE_H
#define BNF_TRAINMODE_H

#include <stddef.h>

#include "util/error.h"
#include "onnx.pb-c.h"

/* What happened to one node found in training mode. */
struct bnf_train_node {
	char *op;      /* "BatchNormalization" or "Dropout" */
	char *node;    /* node name, or its first output */
	char *graph;   /* "" for the main graph, else the subgraph's path */
	int converted; /* 1: now in eval mode; 0: left as it was */
	char *detail;  /* what was changed, or why it was left */
};

struct bnf_train_report {
	struct bnf_train_node *nodes;
	size_t n_nodes;
	size_t n_converted;
};

/* Convert every training-mode BatchNormalization and Dropout of model
 * (subgraphs included) to eval mode in place: training_mode cleared or
 * is_test set, training outputs nobody reads dropped, a constant true
 * training_mode input of Dropout removed. A BatchNormalization whose
 * running-statistics outputs are read (or are graph outputs) is left as it
 * was, with the reason. rep is zeroed by the caller and freed with
 * bnf_train_report_free. */
int bnf_train_mode_to_eval(Onnx__ModelProto *model, struct bnf_train_report *rep,
                           struct bnf_error *err);

void bnf_train_report_free(struct bnf_train_report *rep);

#endif
