# bnfold: fold BatchNormalization into the layers in front of it.
#
#   make            build ./bnfold (objects under build/)
#   make check      install missing test packages (as root), build, run the tests
#   make demo       build and fold the shipped example model
#   make asan       rebuild with AddressSanitizer + UBSan and rerun the tests
#   make bench      time bnfold on a generated ResNet-50 (bench/results/latest.md)
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
             -Wpointer-arith -Wformat=2 -Wvla
CFLAGS ?= -O2 -g
STD_FLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
# WERROR is set by the test build: warnings are errors there.
WERROR ?=

BUILD ?= build
GEN = $(BUILD)/gen

PROTOBUF_CFLAGS := $(shell $(PKG_CONFIG) --cflags libprotobuf-c 2>/dev/null)
PROTOBUF_LIBS := $(shell $(PKG_CONFIG) --libs libprotobuf-c 2>/dev/null || echo -lprotobuf-c)

ALL_CFLAGS = $(STD_FLAGS) $(WARN_FLAGS) $(WERROR) $(CFLAGS) $(SAN_FLAGS) \
             -I$(GEN) -Isrc $(PROTOBUF_CFLAGS) -pthread -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SAN_FLAGS) -pthread
LIBS = $(PROTOBUF_LIBS) -lm

# The command line (main.c and the cli_*.c files that print) is kept out of
# the library objects the test programs link.
CLI_SRC = src/main.c $(wildcard src/cli_*.c)
LIB_SRC = $(filter-out $(CLI_SRC),$(wildcard src/*.c)) $(wildcard src/eval/*.c)
LIB_OBJ = $(GEN)/onnx.pb-c.o $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ = $(CLI_SRC:%.c=$(BUILD)/%.o)

# Fuzz targets (tests/fuzz/): each links as a replay program over corpus
# folders (a test program) and, with clang, as a libFuzzer target.
FUZZ_TARGETS = load fold eval
FUZZ_OBJ = $(BUILD)/tests/fuzz/fuzz_common.o
TEST_PROGS = $(BUILD)/tests/roundtrip $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay_%)

.PHONY: all clean check test asan ubsan demo deps-build deps-test install uninstall format bench \
	fuzz fuzz-replay

all: bnfold

bnfold: $(BUILD)/bnfold
	cp $(BUILD)/bnfold $@

$(BUILD)/bnfold: $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h: proto/onnx.proto
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) --proto_path=proto proto/onnx.proto

# Generated code is compiled without our warning set: it is protoc-c's.
$(GEN)/onnx.pb-c.o: $(GEN)/onnx.pb-c.c
	$(CC) $(STD_FLAGS) $(CFLAGS) $(SAN_FLAGS) -I$(GEN) $(PROTOBUF_CFLAGS) -c -o $@ $<

$(BUILD)/src/%.o: src/%.c $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/roundtrip: $(BUILD)/tests/roundtrip.o $(LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/fuzz/replay_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/replay.o $(FUZZ_OBJ) \
		$(LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

-include $(wildcard $(BUILD)/src/*.d $(BUILD)/src/eval/*.d $(BUILD)/tests/*.d $(BUILD)/bench/*.d \
	$(BUILD)/tests/fuzz/*.d)

# Packages: the build needs a compiler and protobuf-c; the tests need the
# real ONNX checker, numpy, pytest, ONNX's backend test data, Node.js for
# onnxruntime, jq and valgrind. As root they are installed; otherwise the
# exact command is printed.
BUILD_PKGS = gcc:cc make:make pkg-config protobuf-c-compiler libprotobuf-c-dev
TEST_PKGS = python3 python3-onnx python3-numpy python3-pytest libonnx-testdata \
            nodejs:node npm:npm jq

deps-build:
	@sh .ci/deps $(BUILD_PKGS)

deps-test:
	@sh .ci/deps $(BUILD_PKGS) $(TEST_PKGS)

demo: deps-build bnfold
	./bnfold tests/fixtures/example.onnx -o $(BUILD)/example-folded.onnx -v

# The test build: warnings are errors.
check: deps-test
	$(MAKE) WERROR=-Werror bnfold $(TEST_PROGS)
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
$(BUILD)/bench/gemm_bench: $(BUILD)/bench/gemm_bench.o $(LIB_OBJ)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bench/%.o: bench/%.c $(GEN)/onnx.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

bench: $(BUILD)/bnfold $(BUILD)/bench/gemm_bench
	@test -f bench/work/resnet50.onnx || $(PYTHON) bench/gen_resnet50.py
	BNFOLD=$(BUILD)/bnfold GEMM_BENCH=$(BUILD)/bench/gemm_bench sh bench/run.sh

format:
	clang-format -i src/*.c src/*.h src/eval/*.c src/eval/*.h tests/*.c

clean:
	rm -rf build bnfold
