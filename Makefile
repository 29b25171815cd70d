# smsrules — plain Makefile. `make`, `make run`, `make test`, `make asan`, `make bench`.
#
# The public targets first make sure the Debian packages are there
# (scripts/install-deps.sh), then build through a recursive make so that the
# pkg-config calls below run only once the libraries exist.

BUILD ?= build
SAN ?=
PKGS = lua5.4 libcurl libuv lmdb lua5.4-cjson
LLHTTP_SRC = /usr/share/llhttp
LLHTTP_INC = /usr/share/include/llhttp

CC ?= cc
OPT ?= -O2
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_COMMON = -std=c11 -D_GNU_SOURCE -g $(OPT) -fno-omit-frame-pointer $(SAN)
CPPFLAGS = -Isrc -I$(LLHTTP_INC) $(shell pkg-config --cflags $(PKGS))
LDLIBS = $(shell pkg-config --libs $(PKGS)) -lm -lpthread

SRCS = $(filter-out src/main.c,$(wildcard src/*.c))
OBJS = $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LUA_FILES = $(sort $(wildcard lua/*.lua lua/adapters/*.lua))
GEN_OBJ = $(BUILD)/gen/lua_embedded.o
LLHTTP_OBJS = $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
LIB = $(BUILD)/libsmsrules.a
BIN = $(BUILD)/smsrules
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)


.PHONY: all deps build run test asan bench clean fmt

all: deps
	@$(MAKE) --no-print-directory build
	@ln -sf $(BIN) smsrules

deps:
	@scripts/install-deps.sh

build: $(BIN) $(UNIT_BINS)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS_COMMON) $(WARN) $(CPPFLAGS) -c $< -o $@

$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS_COMMON) -w -I$(LLHTTP_INC) -c $< -o $@

$(BUILD)/gen/lua_embedded.c: $(LUA_FILES) scripts/embed-lua.sh
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	@scripts/embed-lua.sh $@ $(LUA_FILES)

$(GEN_OBJ): $(BUILD)/gen/lua_embedded.c
	@$(CC) $(CFLAGS_COMMON) -c $< -o $@

$(LIB): $(OBJS) $(LLHTTP_OBJS) $(GEN_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(LIB)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS_COMMON) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.c tests/unit/unit.h tests/unit/lua_fixture.c tests/unit/lua_fixture.h $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS_COMMON) $(WARN) $(CPPFLAGS) -Itests/unit $< tests/unit/unit.c tests/unit/lua_fixture.c $(LIB) -o $@ $(LDLIBS)

run: deps
	@$(MAKE) --no-print-directory build
	@BIN=$(BIN) scripts/run.sh

test: deps
	@$(MAKE) --no-print-directory build
	@BUILD=$(BUILD) tests/run.sh

# AddressSanitizer + UBSan build of everything, running the same tests.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" build
	@BUILD=build/asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 SMSRULES_ASAN=1 tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory build
	@for b in scripts/bench/*.sh; do echo "== $$b"; BUILD=$(BUILD) $$b || exit 1; done

fmt:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/unit/*.h

clean:
	rm -rf build smsrules
