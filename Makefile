# bnfold: fold BatchNormalization into the layers in front of it.
#
#   make            build ./bnfold (objects under build/)
#   make check      install missing test packages (as root), build, run the tests
#   make demo       build and fold the shipped example model
#   make asan       rebuild with AddressSanitizer + UBSan and rerun the tests
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

LIB_SRC = $(filter-out src/main.c,$(wildcard src/*.c)) $(wildcard src/eval/*.c)
LIB_OBJ = $(GEN)/onnx.pb-c.o $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ = $(BUILD)/src/main.o

TEST_PROGS = $(BUILD)/tests/roundtrip

.PHONY: all clean check test asan ubsan demo deps-build deps-test install uninstall format

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

-include $(wildcard $(BUILD)/src/*.d $(BUILD)/src/eval/*.d $(BUILD)/tests/*.d)

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
	sh tests/run.sh

test: check

asan:
	$(MAKE) BUILD=build/asan WERROR=-Werror \
	  SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  CFLAGS="-O1 -g" build/asan/bnfold build/asan/tests/roundtrip
	BNFOLD_BUILD=build/asan sh tests/run.sh

ubsan: asan

install: bnfold
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 bnfold $(DESTDIR)$(BINDIR)/bnfold
	install -m 644 man/bnfold.1 $(DESTDIR)$(MANDIR)/man1/bnfold.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/bnfold $(DESTDIR)$(MANDIR)/man1/bnfold.1

format:
	clang-format -i src/*.c src/*.h src/eval/*.c src/eval/*.h tests/*.c

clean:
	rm -rf build bnfold
