# hugevmm — `make` builds build/hugevmm; `make test` runs every test tier,
# then again under ASan/UBSan; `make SAN=1` builds the sanitizer flavour into
# build-san/. V=1 shows the commands.

VERSION := 0.1.0
VERSION_MAJOR := $(firstword $(subst ., ,$(VERSION)))
# include/hugevmm.h spells the version out for embedders; it must be this one.
ifneq ($(shell awk '/^\#define HUGEVMM_VERSION_(MAJOR|MINOR|PATCH) /{v=v s $$3; s="."} \
	/^\#define HUGEVMM_VERSION "/{q=$$3} END{print v, q}' include/hugevmm.h),$(VERSION) "$(VERSION)")
$(error include/hugevmm.h: its HUGEVMM_VERSION* macros must say $(VERSION), the Makefile's VERSION)
endif
SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= gcc
PKGS := libdaxctl libcjson liburing libseccomp
# pkg-config runs when the first recipe needs it (then once): on a fresh machine the
# packages are installed by the $(DEPS_STAMP) prerequisite, after make has read this file.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
# libdaxctl is dlopen()ed on first use (memory/dax.c); only its header is needed here.
PKG_LIBS = $(eval PKG_LIBS := $(shell pkg-config --libs $(filter-out libdaxctl,$(PKGS))) \
	-lhttp_parser -ldl)$(PKG_LIBS)

WARN := -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 \
	-Wshadow -Wvla -Wno-format-nonliteral
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -D_GNU_SOURCE -Iinclude \
	-DHUGEVMM_VERSION='"$(VERSION)"' -I. $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)
LIBS = $(PKG_LIBS) -lpthread -lm

Q := $(if $(filter 1,$(V)),,@)

LIB_SRCS := $(wildcard common/*.c memory/*.c vmm/*.c devices/*.c devices/virtio/*.c api/*.c)
LIB_SRCS := $(filter-out api/cli.c,$(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
# The library's objects export only what include/hugevmm.h marks HUGEVMM_API. The binary,
# the unit tests and the fuzzers link them all from the internal archive; embedders get
# libhugevmm.so or libhugevmm.a, where the other symbols are local.
LIB_CFLAGS := -fPIC -fvisibility=hidden
LIB_INTERNAL := $(BUILD)/libhugevmm-internal.a
LIB_SO := $(BUILD)/libhugevmm.so.$(VERSION)
LIB_SO_LINKS := $(BUILD)/libhugevmm.so.$(VERSION_MAJOR) $(BUILD)/libhugevmm.so
LIB_FLAGS_STAMP := $(BUILD)/.lib-cflags
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/tests/%)
DEPS_STAMP := build/.deps-build

.SECONDARY:

.PHONY: all tests-bin deps deps-test test test-unit test-int test-l1 run clean format bench bench-quick
.PHONY: install uninstall FORCE
all: $(BUILD)/hugevmm $(BUILD)/libhugevmm.a $(LIB_SO_LINKS) $(BUILD)/testguest.elf
	@:

# Missing Debian packages are installed (as root) or named (otherwise) once.
$(DEPS_STAMP): scripts/deps.sh
	$(Q)mkdir -p $(@D)
	$(Q)bash scripts/deps.sh build
	$(Q)touch $@
deps: $(DEPS_STAMP)
deps-test: $(DEPS_STAMP)
	$(Q)bash scripts/deps.sh test

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB_OBJS): private ALL_CFLAGS += $(LIB_CFLAGS)
# Library objects are rebuilt when their flags change (objects from before -fPIC
# would not link into the .so); the stamp is rewritten only then.
$(LIB_OBJS): $(LIB_FLAGS_STAMP)
$(LIB_FLAGS_STAMP): FORCE | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(Q)echo '$(CC) $(ALL_CFLAGS) $(LIB_CFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(LIB_CFLAGS)' >$@
FORCE:

$(LIB_INTERNAL): $(LIB_OBJS)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

# The static library: one relocatable object whose hidden symbols are made local.
$(BUILD)/libhugevmm.a: $(LIB_OBJS)
	$(Q)$(CC) -r -nostdlib -o $(BUILD)/hugevmm-all.o $^
	$(Q)objcopy --localize-hidden $(BUILD)/hugevmm-all.o $(BUILD)/hugevmm.o
	$(Q)rm -f $@ $(BUILD)/hugevmm-all.o
	$(Q)ar rcs $@ $(BUILD)/hugevmm.o

$(LIB_SO): $(LIB_OBJS)
	$(Q)$(CC) -shared -Wl,-soname,libhugevmm.so.$(VERSION_MAJOR) -Wl,-z,defs \
		$(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(LIB_SO_LINKS): $(LIB_SO)
	$(Q)ln -sf $(<F) $@

$(BUILD)/hugevmm: $(BUILD)/api/cli.o $(LIB_INTERNAL)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# The freestanding test guest (PVH ELF): never sanitized, no libc, no SSE in ring 0.
GUEST_CFLAGS := -std=gnu11 -O2 -g $(WARN) -ffreestanding -fno-stack-protector -fno-pic \
	-fno-pie -mno-red-zone -mgeneral-regs-only -fno-asynchronous-unwind-tables -MMD -MP
GUEST_OBJS := $(BUILD)/tests/guest/entry.o $(BUILD)/tests/guest/guest.o \
	$(BUILD)/tests/guest/virtio.o $(BUILD)/tests/guest/rng.o $(BUILD)/tests/guest/blk.o \
	$(BUILD)/tests/guest/net.o $(BUILD)/tests/guest/balloon.o $(BUILD)/tests/guest/vsock.o \
	$(BUILD)/tests/guest/tsc.o
$(BUILD)/tests/guest/%.o: tests/guest/%.c | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@
$(BUILD)/tests/guest/%.o: tests/guest/%.S | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(GUEST_CFLAGS) -c $< -o $@
$(BUILD)/testguest.elf: $(GUEST_OBJS) tests/guest/guest.ld
	$(Q)$(CC) -nostdlib -static -no-pie -Wl,-T,tests/guest/guest.ld -Wl,--build-id=none \
		-Wl,-z,noexecstack -Wl,--no-warn-rwx-segments -o $@ $(GUEST_OBJS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB_INTERNAL)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

# The embedding test sees the public header and archive only (no -I.): they stand alone.
# tests/integration/test_install.py builds it again against an installed copy.
EMBED_BIN := $(BUILD)/tests/embed_test
$(EMBED_BIN): tests/embed/embed_test.c include/hugevmm.h $(BUILD)/libhugevmm.a
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -Iinclude -o $@ $< \
		$(ALL_LDFLAGS) $(BUILD)/libhugevmm.a $(LIBS)

$(BUILD)/tests/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(LIB_INTERNAL)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# netblast: the frames test_net_guest_qemu.py sends to the test guest (mode=rx).
tests-bin: $(UNIT_BINS) $(FUZZ_BINS) $(EMBED_BIN) $(BUILD)/bench/netblast
	@:

# The full suite: unit + integration + L1 (real TDP KVM in emulated L1 guests), then all
# of it again under ASan/UBSan (L1 then carries the sanitized hugevmm).
test: deps-test
	$(Q)$(MAKE) --no-print-directory all tests-bin
	$(Q)scripts/run-tests.sh $(BUILD)
	$(Q)$(MAKE) --no-print-directory SAN=1 all tests-bin
	$(Q)scripts/run-tests.sh build-san

test-unit test-int test-l1: deps-test all tests-bin
	$(Q)scripts/run-tests.sh $(BUILD) $(@:test-%=%)

# The README's first command: boot the bundled default VM (the test guest on THP
# memory) and print its console and the memory coverage report. Without a usable
# /dev/kvm scripts/run.sh runs the same command inside L1 (tests/l1/vm.py) and says so.
run: all
	$(Q)scripts/run.sh $(BUILD)

# The README's two commands on a fresh Debian 12 root (mmdebstrap; as root), from a
# clone of HEAD: each must pass on its first try (scripts/fresh-check.sh).
.PHONY: fresh-check
fresh-check:
	$(Q)bash scripts/fresh-check.sh

# Native baselines: the same memory kinds and, for randread, the test guest's own loop.
BENCH_BINS := $(BUILD)/bench/memset $(BUILD)/bench/randread $(BUILD)/bench/vmtime $(BUILD)/bench/irqclose \
	$(BUILD)/bench/netblast
$(BUILD)/bench/%: bench/%.c bench/native.h tests/guest/chase.h | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -std=gnu11 -O2 -D_GNU_SOURCE $(WARN) -o $@ $<

# Benchmarks, not tests: hugevmm beside QEMU and native in one run; results, a
# Markdown table and an SVG chart go to bench/results/. Root is needed to set THP
# modes and hugetlb pools (restored afterwards).
bench bench-quick: all $(BENCH_BINS)
	$(Q)bash scripts/deps.sh bench
	$(Q)/usr/bin/python3 bench/run.py --bindir $(BUILD)/bench --hugevmm $(BUILD)/hugevmm \
		--guest $(BUILD)/testguest.elf $(if $(filter bench-quick,$@),--quick)

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the header, libhugevmm.so
# (soname libhugevmm.so.$(VERSION_MAJOR)) and libhugevmm.a, and hugevmm.pc for pkg-config.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
install: $(BUILD)/hugevmm $(BUILD)/libhugevmm.a $(LIB_SO) hugevmm.pc.in
	$(Q)install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR)
	$(Q)install -m 755 $(BUILD)/hugevmm $(DESTDIR)$(BINDIR)/hugevmm
	$(Q)install -m 644 include/hugevmm.h $(DESTDIR)$(INCLUDEDIR)/hugevmm.h
	$(Q)install -m 644 $(BUILD)/libhugevmm.a $(DESTDIR)$(LIBDIR)/libhugevmm.a
	$(Q)install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/$(notdir $(LIB_SO))
	$(Q)ln -sf $(notdir $(LIB_SO)) $(DESTDIR)$(LIBDIR)/libhugevmm.so.$(VERSION_MAJOR)
	$(Q)ln -sf libhugevmm.so.$(VERSION_MAJOR) $(DESTDIR)$(LIBDIR)/libhugevmm.so
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
		-e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
		-e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
		hugevmm.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/hugevmm.pc
	$(Q)if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi

uninstall:
	$(Q)rm -f $(DESTDIR)$(BINDIR)/hugevmm $(DESTDIR)$(INCLUDEDIR)/hugevmm.h \
		$(DESTDIR)$(LIBDIR)/libhugevmm.a $(DESTDIR)$(LIBDIR)/libhugevmm.so* \
		$(DESTDIR)$(PKGCONFIGDIR)/hugevmm.pc

format:
	$(Q)clang-format -i $(wildcard */*.c */*.h tests/*/*.c)

clean:
	$(Q)rm -rf build build-san

-include $(LIB_OBJS:.o=.d) $(BUILD)/api/cli.d $(GUEST_OBJS:.o=.d) $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%.d) $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%.d)
