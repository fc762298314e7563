# tether: a resource-provider host.
#
#   make            build everything into build/ (binaries in build/bin/)
#   make test       unit tests (plain, under ASan+UBSan, under valgrind),
#                   end-to-end tests
#   make demo       the quickstart walkthrough
#   make bench      benchmarks, side by side with their peers
#   make install PREFIX=/usr/local
#
# Missing Debian packages are installed with apt-get when run as root;
# otherwise make stops with the exact command to run.

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
VERSION := 0.1.0

PKGS     := libuv cmocka
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter
CSTD     := -std=c11 -D_GNU_SOURCE
OPT      ?= -O2 -g
SANFLAGS :=
ifeq ($(SANITIZE),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      := -O1 -g
endif

CPPFLAGS += -Iinclude -Iprotocol -Iproviders/lib -Ihost -DTETHER_VERSION='"$(VERSION)"'
CFLAGS   += $(CSTD) $(WARN) $(OPT) $(SANFLAGS) -fPIC -pthread -MMD -MP
LDFLAGS  += $(SANFLAGS) -pthread
UV_LIBS   = $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

OBJ := $(BUILD)/obj

PROTOCOL_SRC := $(wildcard protocol/*.c)
PROVLIB_SRC  := $(wildcard providers/lib/*.c)
HOST_SRC     := $(filter-out host/main.c,$(wildcard host/*.c))
LOCAL_SRC    := $(wildcard providers/local/*.c)
UNIT_SRC     := $(wildcard tests/unit/test_*.c)
HELPER_SRC   := $(wildcard tests/helpers/*.c)
BENCH_SRC    := $(wildcard tests/bench/*.c)

PROTOCOL_OBJ := $(PROTOCOL_SRC:%.c=$(OBJ)/%.o)
PROVLIB_OBJ  := $(PROVLIB_SRC:%.c=$(OBJ)/%.o)
HOST_OBJ     := $(HOST_SRC:%.c=$(OBJ)/%.o)
LOCAL_OBJ    := $(LOCAL_SRC:%.c=$(OBJ)/%.o)

LIB_PROTOCOL := $(BUILD)/lib/libtether-protocol.a
LIB_PROVIDER := $(BUILD)/lib/libtether-provider.a
LIB_HOST     := $(BUILD)/lib/libtether-host.a

BINS  := $(BUILD)/bin/tether $(if $(LOCAL_SRC),$(BUILD)/bin/tether-local)
UNITS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HELPERS := $(HELPER_SRC:tests/helpers/%.c=$(BUILD)/tests/%)
BENCHES := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps deps-test deps-bench test unit unit-san e2e demo bench install clean
all: $(BINS) $(LIB_PROVIDER) $(HELPERS)

# Debian packages each target needs. A working `node` counts for nodejs,
# which may come from elsewhere.
DEPS_BUILD := build-essential pkg-config libuv1-dev libjsmn-dev libcmocka-dev
DEPS_TEST  := $(DEPS_BUILD) valgrind jq
DEPS_BENCH := $(DEPS_BUILD) nodejs npm

deps:
	@$(call install_deps,$(DEPS_BUILD))
deps-test:
	@$(call install_deps,$(DEPS_TEST))
deps-bench:
	@$(call install_deps,$(DEPS_BENCH))

define install_deps
missing=""; \
for p in $(1); do \
  case $$p in nodejs|npm) command -v $${p%js} >/dev/null 2>&1 && continue;; esac; \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "tether: missing Debian packages:$$missing" >&2; \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >&2; \
    apt-get install -y -qq --no-install-recommends $$missing >&2 || \
      { echo "tether: apt-get install failed" >&2; exit 1; }; \
  else \
    echo "tether: run this, then try again:" >&2; \
    echo "  sudo apt-get install -y$$missing" >&2; exit 1; \
  fi; \
fi
endef

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB_PROTOCOL): $(PROTOCOL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The provider library carries the protocol layer inside it, so an author
# links one library.
$(LIB_PROVIDER): $(PROVLIB_OBJ) $(PROTOCOL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIB_HOST): $(HOST_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/tether: $(OBJ)/host/main.o $(LIB_HOST) $(LIB_PROTOCOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(UV_LIBS) -lm

$(BUILD)/bin/tether-local: $(LOCAL_OBJ) $(LIB_PROVIDER)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lm

$(BUILD)/tests/%: tests/unit/%.c $(LIB_HOST) $(LIB_PROVIDER)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIB_HOST) $(LIB_PROVIDER) $(LDFLAGS) $(CMOCKA_LIBS) $(UV_LIBS) -lm

$(BUILD)/tests/%: tests/helpers/%.c $(LIB_PROVIDER)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIB_PROVIDER) $(LDFLAGS) -lm

$(BUILD)/bench/%: tests/bench/%.c $(LIB_PROVIDER)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(LIB_PROVIDER) $(LDFLAGS) -lm

unit: $(UNITS) $(HELPERS) $(BINS)

test: deps-test
	@$(MAKE) --no-print-directory all unit
	@$(MAKE) --no-print-directory BUILD=build/san SANITIZE=1 unit
	@sh tests/run.sh

demo: deps all
	@sh examples/quickstart/demo.sh

bench: deps-bench all $(BENCHES)
	@sh tests/bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	           $(DESTDIR)$(PREFIX)/include/tether
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB_PROVIDER) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/tether/*.h $(DESTDIR)$(PREFIX)/include/tether/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    providers/lib/tether-provider.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tether-provider.pc

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
