# smsrules — plain Makefile. `make`, `make run`, `make test`, `make asan`, `make bench`, `make fuzz`, `make deb`.
#
# The public targets first make sure the Debian packages are there
# (scripts/install-deps.sh), then build through a recursive make so that the
# pkg-config calls below run only once the libraries exist. That inner make
# builds on every core (JOBS, default: nproc; or as `make -jN` says).

BUILD ?= build
SAN ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# -jJOBS unless the make above was given its own -j (its jobserver then serves the inner one).
JOBS_FLAG = $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(JOBS))
PKGS = lua5.4 libcurl libuv lmdb lua5.4-cjson libcrypto libnats
LLHTTP_SRC = /usr/share/llhttp
LLHTTP_INC = /usr/share/include/llhttp

CC ?= cc
OPT ?= -O2
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_COMMON = -std=c11 -D_GNU_SOURCE -g $(OPT) -fno-omit-frame-pointer $(SAN)
# llhttp ships as generated C with a loose and a strict parser; the strict one
# (RFC token header names, CRLF line ends) is the one a server should expose.
LLHTTP_FLAGS = -DLLHTTP_STRICT_MODE=1
CPPFLAGS = -Isrc -I$(LLHTTP_INC) $(LLHTTP_FLAGS) $(shell pkg-config --cflags $(PKGS))
# Phone numbers: libphonenumber (C++, no .pc file) and its geocoder, wrapped by
# src/codec/phone.cc; the C link adds the C++ runtime. The time zone and carrier
# tables come from Debian's python3-phonenumbers (same libphonenumber release),
# read by the system Python that has it.
CXX ?= g++
CXXFLAGS_COMMON = -std=c++17 -D_GNU_SOURCE -g $(OPT) -fno-omit-frame-pointer $(SAN)
CXXWARN = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
PHONE_LIBS = -lgeocoding -lphonenumber $(shell pkg-config --libs icu-uc protobuf) -lstdc++
PHONE_PYTHON ?= /usr/bin/python3
LDLIBS = $(shell pkg-config --libs $(PKGS)) $(PHONE_LIBS) -lm -lpthread

SRCS = $(filter-out src/daemon/main.c,$(shell find src -name '*.c' | sort))
CXX_SRCS = $(shell find src -name '*.cc' | sort)
HDRS = $(shell find src -name '*.h')
OBJS = $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(CXX_SRCS:src/%.cc=$(BUILD)/obj/%.o)
LUA_FILES = $(sort $(wildcard lua/*.lua lua/adapters/*.lua))
CONSOLE_FILES = $(sort $(wildcard console/*.html console/*.css console/*.js console/*.svg))
GEN_OBJ = $(BUILD)/gen/lua_embedded.o $(BUILD)/gen/phone_data.o $(BUILD)/gen/console_embedded.o
LLHTTP_OBJS = $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
LIB = $(BUILD)/libsmsrules.a
BIN = $(BUILD)/smsrules
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
UNIT_BINS = $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)


.PHONY: all deps build run test asan bench fuzz fuzz-build clean fmt deb

all: deps
	@$(MAKE) --no-print-directory $(JOBS_FLAG) build
	@ln -sf $(BIN) smsrules

deps:
	@scripts/install-deps.sh

build: $(BIN) $(UNIT_BINS)

$(BUILD)/obj/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS_COMMON) $(WARN) $(CPPFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: src/%.cc $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CXX   $<"
	@$(CXX) $(CXXFLAGS_COMMON) $(CXXWARN) $(CPPFLAGS) -c $< -o $@

$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS_COMMON) -w -I$(LLHTTP_INC) $(LLHTTP_FLAGS) -c $< -o $@

$(BUILD)/gen/lua_embedded.c: $(LUA_FILES) scripts/embed-files.sh
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	@scripts/embed-files.sh $@ lua lua/ .lua $(LUA_FILES)

$(BUILD)/gen/lua_embedded.o: $(BUILD)/gen/lua_embedded.c
	@$(CC) $(CFLAGS_COMMON) -c $< -o $@

$(BUILD)/gen/console_embedded.c: $(CONSOLE_FILES) scripts/embed-files.sh
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	@scripts/embed-files.sh $@ console console/ "" $(CONSOLE_FILES)

$(BUILD)/gen/console_embedded.o: $(BUILD)/gen/console_embedded.c
	@$(CC) $(CFLAGS_COMMON) -c $< -o $@

$(BUILD)/gen/phone_data.c: scripts/gen-phone-data.py
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	@$(PHONE_PYTHON) scripts/gen-phone-data.py $@.tmp && mv $@.tmp $@

$(BUILD)/gen/phone_data.o: $(BUILD)/gen/phone_data.c src/codec/phone_data.h
	@$(CC) $(CFLAGS_COMMON) -Isrc -c $< -o $@

$(LIB): $(OBJS) $(LLHTTP_OBJS) $(GEN_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BIN): $(BUILD)/obj/daemon/main.o $(LIB)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS_COMMON) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.c tests/unit/unit.h tests/unit/lua_fixture.c tests/unit/lua_fixture.h $(LIB)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS_COMMON) $(WARN) $(CPPFLAGS) -Itests/unit $< tests/unit/unit.c tests/unit/lua_fixture.c $(LIB) -o $@ $(LDLIBS)

run: deps
	@$(MAKE) --no-print-directory $(JOBS_FLAG) build
	@BIN=$(BIN) scripts/run.sh

test: deps
	@$(MAKE) --no-print-directory $(JOBS_FLAG) build
	@BUILD=$(BUILD) tests/run.sh

# The Debian package (binary, units, quickstart rules as /etc/smsrules/rules.lua)
# of the binary built here: $(BUILD)/deb/smsrules_VERSION_ARCH.deb. See
# scripts/build-deb.sh and docs/operations.md.
deb: deps
	@$(MAKE) --no-print-directory $(JOBS_FLAG) $(BIN)
	@scripts/build-deb.sh $(BIN) $(BUILD)/deb

# AddressSanitizer + UBSan build of everything, running the same tests.
asan: deps
	@$(MAKE) --no-print-directory $(JOBS_FLAG) BUILD=build/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" build
	@BUILD=build/asan ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 SMSRULES_ASAN=1 tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory $(JOBS_FLAG) build
	@for b in scripts/bench/*.sh; do echo "== $$b"; BUILD=$(BUILD) $$b || exit 1; done

# Coverage-guided fuzzing of the parsers that read outside input (libFuzzer,
# clang; not part of `make test`; .ci/run runs it for FUZZ_SECONDS=10 each).
# One target per parser in tests/fuzz/fuzz_NAME.c, whose header says what it
# checks; each links the src/ files it needs (fuzz_webhooks all of them: a
# whole rules state), compiled again by clang into build/fuzz/obj/. Each runs
# FUZZ_SECONDS in turn: first every input of tests/fuzz/seeds/NAME and of the
# committed regression corpus tests/fuzz/corpus/NAME (when there is one),
# then new ones, kept in build/fuzz/corpus/NAME. A crash, leak, UB report or
# an input that takes more than FUZZ_TIMEOUT seconds is saved as
# build/fuzz/NAME-crash-* (or -timeout-*) and fails the target; once all have
# run, scripts/fuzz.sh repeats each failure's report and input (base64), so
# the end of the output says what failed. Each target's whole output is in
# build/fuzz/NAME.log.
#   make fuzz FUZZ_TARGETS=json FUZZ_SECONDS=600     one target, longer
#   build/fuzz/fuzz_json build/fuzz/json-crash-...   replay a saved input
FUZZ_CC = clang
FUZZ_SECONDS ?= 60
FUZZ_TIMEOUT ?= 10
FUZZ_TARGETS ?= json message record text template rfc3339 base64 form pattern store_open webhooks
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LDLIBS = $(shell pkg-config --libs lua5.4 libcrypto) -lm -lpthread
FUZZ_OBJ = $(BUILD)/fuzz/obj
# Longest input worth trying, per target: a few records, texts of several
# parts, a template with many placeholders, one timestamp, one signature, a
# short subject and pattern (our matcher against Lua's, tests/fuzz/fuzz_pattern.c).
FUZZ_MAX_LEN_json = 4096
FUZZ_MAX_LEN_message = 4096
FUZZ_MAX_LEN_record = 2048
FUZZ_MAX_LEN_text = 2048
FUZZ_MAX_LEN_template = 2048
FUZZ_MAX_LEN_rfc3339 = 64
FUZZ_MAX_LEN_base64 = 512
FUZZ_MAX_LEN_form = 2048
FUZZ_MAX_LEN_pattern = 256
# A small store file: two meta pages and a few dozen others.
FUZZ_MAX_LEN_store_open = 131072
FUZZ_MAX_LEN_webhooks = 8192

fuzz: deps
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang: apt-get install clang" >&2; exit 1; }
	@$(MAKE) --no-print-directory $(JOBS_FLAG) fuzz-build
	@scripts/fuzz.sh $(BUILD) $(FUZZ_SECONDS) $(FUZZ_TIMEOUT) "$(foreach t,$(FUZZ_TARGETS),$(t):$(FUZZ_MAX_LEN_$(t)))"

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)

$(FUZZ_OBJ)/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC    $< (fuzz)"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(CPPFLAGS) -c $< -o $@

$(FUZZ_OBJ)/%.o: src/%.cc $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CXX   $< (fuzz)"
	@$(FUZZ_CC)++ $(patsubst -std=c11,-std=c++17,$(FUZZ_CFLAGS)) -fno-sanitize=vptr $(CXXWARN) $(CPPFLAGS) -c $< -o $@

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c
	@echo "  LD    $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) $(CPPFLAGS) $^ -o $@ $(FUZZ_LDLIBS)

$(BUILD)/fuzz/fuzz_json: $(FUZZ_OBJ)/codec/json.o $(FUZZ_OBJ)/core/buf.o $(FUZZ_OBJ)/codec/text.o
# The message: both record formats (message_record.o reads either), the arena of sr_message_copy_in.
MESSAGE_FUZZ_OBJS = $(FUZZ_OBJ)/model/message.o $(FUZZ_OBJ)/model/message_record.o $(FUZZ_OBJ)/core/arena.o \
	$(FUZZ_OBJ)/codec/json.o $(FUZZ_OBJ)/core/buf.o $(FUZZ_OBJ)/codec/crypto.o
$(BUILD)/fuzz/fuzz_message: $(MESSAGE_FUZZ_OBJS)
$(BUILD)/fuzz/fuzz_record: $(MESSAGE_FUZZ_OBJS)
$(BUILD)/fuzz/fuzz_text: $(FUZZ_OBJ)/codec/text.o
$(BUILD)/fuzz/fuzz_template: $(FUZZ_OBJ)/codec/template.o $(FUZZ_OBJ)/codec/json.o $(FUZZ_OBJ)/core/buf.o
$(BUILD)/fuzz/fuzz_rfc3339: $(MESSAGE_FUZZ_OBJS)
$(BUILD)/fuzz/fuzz_base64: $(FUZZ_OBJ)/codec/crypto.o
$(BUILD)/fuzz/fuzz_form: $(FUZZ_OBJ)/codec/form.o $(FUZZ_OBJ)/core/buf.o
$(BUILD)/fuzz/fuzz_pattern: $(FUZZ_OBJ)/rules/lua_string.o
$(BUILD)/tests/test_lua_string: tests/unit/lua_string_compare.h
$(BUILD)/fuzz/fuzz_store_open: $(FUZZ_OBJ)/store/store.o $(FUZZ_OBJ)/store/store_pages.o $(FUZZ_OBJ)/store/store_cluster.o $(MESSAGE_FUZZ_OBJS) \
	$(FUZZ_OBJ)/core/log.o $(FUZZ_OBJ)/core/gcra.o $(FUZZ_OBJ)/codec/text.o $(FUZZ_OBJ)/codec/crypto.o
$(BUILD)/fuzz/fuzz_store_open: FUZZ_LDLIBS += $(shell pkg-config --libs libuv lmdb libnats)
# The adapters run in a rules state: the whole library, and every library it links.
$(BUILD)/fuzz/fuzz_webhooks: $(SRCS:src/%.c=$(FUZZ_OBJ)/%.o) $(CXX_SRCS:src/%.cc=$(FUZZ_OBJ)/%.o) $(LLHTTP_OBJS) $(GEN_OBJ)
$(BUILD)/fuzz/fuzz_webhooks: FUZZ_LDLIBS = $(LDLIBS)

fmt:
	clang-format -i $(SRCS) src/daemon/main.c $(CXX_SRCS) $(HDRS) tests/unit/*.c tests/unit/*.h tests/fuzz/*.c

clean:
	rm -rf build smsrules
