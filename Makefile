# bnfold: fold BatchNormalization into the layers in front of it.
#
#   make            build ./bnfold (objects under build/)
#   make check      install missing test packages (as root), build, run the tests
#   make demo       build and fold the shipped example model
#   make asan       rebuild with AddressSanitizer + UBSan and rerun the tests
#   make bench      time bnfold on a generated ResNet-50 and VGG11-bn (bench/results/latest.md)
#   make check-real bnfold on real models from npm packages (network; not in check)
#   make check-lab  the error model on torchvision networks (tests/lab/results.md)
#   make install    PREFIX, DESTDIR, BINDIR, MANDIR are honoured

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3

# Warnings live in their own variable so that a user's CFLAGS cannot drop them.
WARN_FLAGS = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wpointer-arith -Wformat=2 -Wvla -Wcast-qual
CFLAGS ?= -O2 -g
STD_FLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
# WERROR is set by the test build: warnings are errors there.
WERROR ?=

BUILD ?= build
GEN = $(BUILD)/gen

PROTOBUF_CFLAGS := $(shell $(PKG_CONFIG) --cflags libprotobuf-c 2>/dev/null)
PROTOBUF_LIBS := $(shell $(PKG_CONFIG) --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)

ALL_CPPFLAGS = -I$(GEN) -Isrc $(PROTOBUF_CFLAGS) $(CPPFLAGS)
ALL_CFLAGS = $(STD_FLAGS) $(WARN_FLAGS) $(WERROR) $(CFLAGS) $(SAN_FLAGS) -pthread -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SAN_FLAGS) -pthread
LIBS = $(PROTOBUF_LIBS) -lm

# The rooms of src/, lowest first. Each room is its own archive and
# programs link them highest first, so a call from a room to one above it
# (a backward door) is an undefined reference at link time, not a review
# comment. The command line (src/cli/) is the program itself, not a room
# archive: it is the only code that prints or exits.
ROOMS = util io graph eval fold check
room_obj = $(patsubst %.c,$(BUILD)/%.o,$(wildcard src/$(1)/*.c))
ROOM_LIBS = $(foreach r,$(ROOMS),$(BUILD)/lib/libbnf_$(r).a)
# Link order: the reverse of ROOMS (check first, util last).
LINK_ROOMS = $(foreach r,check fold eval graph io util,$(BUILD)/lib/libbnf_$(r).a)
LIB_OBJ = $(GEN)/onnx.pb-c.o $(foreach r,$(ROOMS),$(call room_obj,$(r)))
MAIN_OBJ = $(patsubst %.c,$(BUILD)/%.o,$(wildcard src/cli/*.c))

# Fuzz targets (tests/fuzz/): each links as a replay program over corpus
# folders (a test program) and, with clang, as a libFuzzer target.
FUZZ_TARGETS = load fold eval
FUZZ_OBJ = $(BUILD)/tests/fuzz/fuzz_common.o
TEST_PROGS = $(BUILD)/tests/roundtrip $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay_%)

# `make -j clean all` must not build while it deletes: with clean among
# other goals the run is serial.
ifneq ($(filter clean,$(MAKECMDGOALS)),)
ifneq ($(filter-out clean,$(MAKECMDGOALS)),)
.NOTPARALLEL:
endif
endif

.PHONY: all clean check test asan ubsan demo deps-build deps-test install uninstall format \
	format-check bench check-lab fuzz fuzz-replay lib check-real FORCE

all: bnfold $(BUILD)/libbnfold.a $(BUILD)/lib/doors.ok

lib: $(BUILD)/libbnfold.a

bnfold: $(BUILD)/bnfold
	cp $(BUILD)/bnfold $@

$(BUILD)/bnfold: $(MAIN_OBJ) $(ROOM_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(MAIN_OBJ) $(LINK_ROOMS) $(LIBS)

# One archive per room; the generated protobuf code goes with io, the
# lowest room that reads ONNX.
$(BUILD)/lib/libbnf_util.a: $(call room_obj,util)
$(BUILD)/lib/libbnf_io.a: $(GEN)/onnx.pb-c.o $(call room_obj,io)
$(BUILD)/lib/libbnf_graph.a: $(call room_obj,graph)
$(BUILD)/lib/libbnf_eval.a: $(call room_obj,eval)
$(BUILD)/lib/libbnf_fold.a: $(call room_obj,fold)
$(BUILD)/lib/libbnf_check.a: $(call room_obj,check)
$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# The doors open one way: every member of a room's archive, linked whole
# into a program with only the rooms below it, must leave nothing
# undefined. A call to a room above fails here by name.
$(BUILD)/lib/doors.ok: $(ROOM_LIBS)
	@printf 'int main(void) { return 0; }\n' > $(BUILD)/lib/doors_main.c
	@$(CC) -c -o $(BUILD)/lib/doors_main.o $(BUILD)/lib/doors_main.c
	@below=""; for r in $(ROOMS); do \
	  $(CC) $(ALL_LDFLAGS) -o $(BUILD)/lib/doors_$$r $(BUILD)/lib/doors_main.o \
	    -Wl,--whole-archive $(BUILD)/lib/libbnf_$$r.a -Wl,--no-whole-archive $$below $(LIBS) || \
	    { echo "bnfold: room $$r calls a room above it (src/$$r/ may use only:$$below)" >&2; exit 1; }; \
	  rm -f $(BUILD)/lib/doors_$$r; below="$(BUILD)/lib/libbnf_$$r.a $$below"; \
	done
	@touch $@

# libbnfold.a: every room in one archive, for programs outside this tree.
$(BUILD)/libbnfold.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# protoc-c writes both files in one run: a grouped target, so that a
# parallel make runs it once.
$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h &: proto/onnx.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) --proto_path=proto proto/onnx.proto

# Every object depends on the flags it was built with: a changed CFLAGS,
# CPPFLAGS, WERROR or SAN_FLAGS rebuilds everything (make && make check
# compiles the test build with -Werror).
FLAGS_STAMP = $(BUILD)/.flags
FLAGS_NOW = $(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) $(ALL_LDFLAGS)
$(FLAGS_STAMP): FORCE
	@mkdir -p $(BUILD)
	@echo '$(FLAGS_NOW)' | cmp -s - $@ || echo '$(FLAGS_NOW)' > $@

# Generated code is compiled without our warning set: it is protoc-c's.
$(GEN)/onnx.pb-c.o: $(GEN)/onnx.pb-c.c $(FLAGS_STAMP)
	$(CC) $(STD_FLAGS) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS) -I$(GEN) $(PROTOBUF_CFLAGS) -c -o $@ $<

$(BUILD)/src/%.o: src/%.c $(GEN)/onnx.pb-c.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c $(GEN)/onnx.pb-c.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/roundtrip: $(BUILD)/tests/roundtrip.o $(ROOM_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LINK_ROOMS) $(LIBS)

$(BUILD)/tests/fuzz/replay_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o $(FUZZ_OBJ) \
		$(ROOM_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LINK_ROOMS) $(LIBS)

$(BUILD)/tests/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ) $(ROOM_LIBS)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(LINK_ROOMS) $(LIBS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Packages: the build needs a compiler and protobuf-c; the tests need the
# real ONNX checker, numpy, pytest, ONNX's backend test data, Node.js for
# onnxruntime, jq, valgrind, and git with pre-commit (the hook test). As root they are installed; otherwise the
# exact command is printed.
BUILD_PKGS = gcc:cc make:make pkg-config protobuf-c-compiler libprotobuf-c-dev
TEST_PKGS = python3 python3-onnx python3-numpy python3-pytest libonnx-testdata \
            nodejs:node npm:npm jq clang-format git pre-commit

deps-build:
	@sh .ci/deps $(BUILD_PKGS)

deps-test:
	@sh .ci/deps $(BUILD_PKGS) $(TEST_PKGS)

demo: deps-build bnfold
	./bnfold tests/fixtures/example.onnx -o $(BUILD)/example-folded.onnx -v

# The test build: warnings are errors.
check: deps-test
	$(MAKE) format-check
	$(MAKE) WERROR=-Werror all $(TEST_PROGS)
	$(MAKE) fuzz-replay
	sh tests/run.sh

test: check

asan:
	$(MAKE) BUILD=build/asan WERROR=-Werror \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  CFLAGS="-O1 -g" build/asan/bnfold build/asan/tests/roundtrip \
	  $(FUZZ_TARGETS:%=build/asan/tests/fuzz/replay_%)
	BNFOLD_BUILD=build/asan sh tests/run.sh

ubsan: asan

# Fuzzing. The fuzz builds lower BNF_MAX_ELEMENTS (4 Mi elements per
# tensor) so that the evaluator target stays within libFuzzer's memory
# limit. `make fuzz FUZZ_SECONDS=N` runs one campaign per target, one job
# at low priority (so the timeout is generous: libFuzzer's clock is wall
# time, and a starved job once reported a 40 ms input as a 28 s timeout),
# adding new inputs to tests/fuzz/corpus/<target>/;
# `make fuzz-replay` replays the committed corpora and tests/hostile/ under
# AddressSanitizer and UBSan (part of `make check`).
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_DEFS = -DBNF_MAX_ELEMENTS=0x400000UL
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

fuzz:
	$(MAKE) BUILD=build/libfuzzer CC=$(FUZZ_CC) WERROR=-Werror CFLAGS="-O1 -g $(FUZZ_DEFS)" \
	  SAN_FLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  $(FUZZ_TARGETS:%=build/libfuzzer/tests/fuzz/fuzz_%)
	@mkdir -p build/libfuzzer/artifacts
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p tests/fuzz/corpus/$$t && \
	  nice -n 19 build/libfuzzer/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=120 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix=build/libfuzzer/artifacts/$$t- \
	    -dict=tests/fuzz/onnx.dict tests/fuzz/corpus/$$t || exit 1; \
	done

fuzz-replay:
	$(MAKE) BUILD=build/fuzz-replay WERROR=-Werror CFLAGS="-O1 -g $(FUZZ_DEFS)" \
	  SAN_FLAGS="$(FUZZ_SAN)" $(FUZZ_TARGETS:%=build/fuzz-replay/tests/fuzz/replay_%)
	for t in $(FUZZ_TARGETS); do \
	  build/fuzz-replay/tests/fuzz/replay_$$t tests/fuzz/corpus/$$t tests/hostile || exit 1; \
	done

# Real models nobody on this project wrote (tests/real/corpus.json): npm
# packages fetched with `npm pack` and torchvision networks exported by torch,
# folded by the plain command and compared with onnxruntime's basic-level
# fusion (tests/real/check_real.py; the plain command must exit 0, unless
# STRICT=0).
# Needs the network; never part of `make check`.
check-real: deps-test
	$(MAKE) all
	sh tests/ort/install.sh
	BNFOLD_BUILD=$(BUILD) $(PYTHON) tests/real/check_real.py

# INSTALL_BIN lets a test install a binary built in another BUILD folder.
INSTALL_BIN ?= bnfold
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions

install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(COMPLETIONDIR)
	install -m 755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/bnfold
	install -m 644 man/bnfold.1 $(DESTDIR)$(MANDIR)/man1/bnfold.1
	install -m 644 man/bnfold.bash-completion $(DESTDIR)$(COMPLETIONDIR)/bnfold

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/bnfold $(DESTDIR)$(MANDIR)/man1/bnfold.1 \
	  $(DESTDIR)$(COMPLETIONDIR)/bnfold

# The benchmark (not part of `make check`): bench/run.sh writes
# bench/results/latest.md; the model is generated into bench/work/.
$(BUILD)/bench/gemm_bench: $(BUILD)/bench/gemm_bench.o $(ROOM_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LINK_ROOMS) $(LIBS)

$(BUILD)/bench/%.o: bench/%.c $(GEN)/onnx.pb-c.h $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# The baseline of its "nothing slower" rows: v0.1 as issue 14 found it,
# built from git into bench/work/ (skipped outside a git clone).
BENCH_BASELINE = 468567c
BENCH_BASE_DIR = bench/work/baseline-$(BENCH_BASELINE)

bench: $(BUILD)/bnfold $(BUILD)/bench/gemm_bench
	@test -f bench/work/resnet50.onnx || $(PYTHON) bench/gen_resnet50.py
	@if [ ! -x $(BENCH_BASE_DIR)/build/bnfold ] && git rev-parse -q --verify \
	    $(BENCH_BASELINE)^{commit} >/dev/null 2>&1; then \
	  rm -rf $(BENCH_BASE_DIR) && mkdir -p $(BENCH_BASE_DIR) && \
	  git archive $(BENCH_BASELINE) | tar -x -C $(BENCH_BASE_DIR) && \
	  $(MAKE) -s -C $(BENCH_BASE_DIR) build/bnfold; fi
	BNFOLD=$(BUILD)/bnfold GEMM_BENCH=$(BUILD)/bench/gemm_bench \
	  BASELINE=$$(test -x $(BENCH_BASE_DIR)/build/bnfold && echo $(BENCH_BASE_DIR)/build/bnfold) \
	  BASELINE_NAME="v0.1, $(BENCH_BASELINE)" sh bench/run.sh

# The lab (not part of `make check`; needs python3-torchvision, about 1.5 GB
# in tests/lab/work/): torchvision networks with random weights and trained
# BN statistics, float32/16/bfloat16/64, opsets 9-17. run_lab.py runs the
# default command on each, writes tests/lab/results.md and fails on any
# network bnfold refuses. BNFOLD_BEFORE=path/to/old/bnfold adds its times.
LAB_PKGS = python3-torchvision
check-lab: $(BUILD)/bnfold
	@sh .ci/deps $(LAB_PKGS)
	$(PYTHON) tests/lab/gen_lab.py
	$(PYTHON) tests/lab/run_lab.py --bnfold $(BUILD)/bnfold \
	  $(if $(BNFOLD_BEFORE),--before $(BNFOLD_BEFORE))

# Every C file of the project follows .clang-format; make check fails
# when one does not (make format fixes them).
FORMAT_FILES = $(wildcard src/*/*.c src/*/*.h tests/*.c tests/fuzz/*.c tests/fuzz/*.h bench/*.c)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run -Werror $(FORMAT_FILES) || \
	  { echo "bnfold: C files differ from .clang-format: run 'make format'" >&2; exit 1; }

clean:
	rm -rf build bnfold
