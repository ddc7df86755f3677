# homeport — see README.md.
#
#   make            static musl binary build/homeport (libraries built from
#                   Debian source packages into build/sysroot on first use)
#   make dev        dynamic build against Debian's -dev packages (fast loop)
#   make asan       ASan+UBSan build (build/asan/homeport)
#   make notls      the static binary without TLS for NBD (build/notls/homeport:
#                   libnbd without GnuTLS; it refuses a configuration that
#                   asks for TLS): half the size, for sites without TLS
#   make size       both static binaries' stripped sizes against their
#                   targets, and what each library costs in each
#   make check      install test needs, build, run each fuzzer briefly, then
#                   the whole suite with the static and the sanitizer binary
#   make fuzz       build the libFuzzer targets (tests/fuzz/) and run each for
#                   FUZZ_SECONDS (default 60)
#   make demo       the boot phase end to end against a local nbdkit
#   make funclen    function lengths in agent/ (tests/funclen.sh); fails
#                   when one is over FUNCLEN_MAX lines (default 120)
#   make install    DESTDIR=… PREFIX=…
#   make deb        the Debian package, in build/deb/ (see debian/README.source)

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1)
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
EXAMPLEDIR ?= $(PREFIX)/share/doc/homeport/examples
BINDIR ?= $(PREFIX)/bin
SYSTEMDUNITDIR ?= /lib/systemd/system
DRACUTDIR ?= /usr/lib/dracut/modules.d
# The initramfs-tools hook and boot script: the local administrator's place
# (a package puts them in /usr/share/initramfs-tools instead: debian/rules)
INITRAMFSDIR ?= $(SYSCONFDIR)/initramfs-tools
# pam-auth-update(8) profiles (read only from there; disabled by default)
PAMCONFIGDIR ?= /usr/share/pam-configs

SRCS := $(sort $(wildcard agent/*.c agent/sync/*.c))
LIBOBJS := $(filter-out agent/main.c,$(SRCS))
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
HDRS := $(wildcard agent/*.h agent/sync/*.h) tests/unit/tap.h

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
        -Wno-missing-field-initializers
WERROR ?= -Werror
BASE_CFLAGS := -std=gnu11 -O2 -g -D_GNU_SOURCE $(WARN) $(WERROR) -Iagent -Ibuild
Q ?= @

SYSROOT := build/sysroot
DEPS_WORK := build/deps

.PHONY: all dev asan notls check demo size install deb clean distclean format lint deps flavor FORCE \
        fuzz fuzz-build fuzz-check fuzz-flavor funclen
all: build/homeport

# The version string, rewritten only when it changes (main.c includes it).
# Only the top-level make checks it at every run: the flavours' sub-makes
# (run side by side by make -j all asan) make it only when it is missing,
# else both would write it at once.
build/version.h: $(if $(FLAVOR),,FORCE)
	@mkdir -p build
	@printf '#define HOMEPORT_VERSION "%s"\n' "$(VERSION)" > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

# ---- flavors (recursive: FLAVOR=static|dev|asan) ---------------------------
ifeq ($(FLAVOR),static)
include $(SYSROOT)/link.mk
CC := musl-gcc
FLAVOR_CFLAGS := $(STATIC_CFLAGS) -ffunction-sections -fdata-sections \
                 -fno-asynchronous-unwind-tables -fno-unwind-tables
# Linked by lld, not GNU ld: it lays the binary out in the order of
# agent/hot.order (bench/hot-order makes it), what homeport's processes
# run and read first.  The kernel maps a program's pages 64 KiB at a time
# around each fault (fault-around), and the resident agent's RSS counts
# them all: scattered over the binary, its pages took 1940 kB of it with
# warm TLS connections.  --no-dynamic-linker: musl-gcc's specs always name
# musl's dynamic linker, which lld would write into a static binary.
FLAVOR_LDFLAGS := -static -Wl,--gc-sections -fuse-ld=lld -Wl,--no-dynamic-linker
ORDER_LDFLAGS := -Wl,--symbol-ordering-file=agent/hot.order -Wl,--no-warn-symbol-ordering
# musl hands freed blocks of 4-256 KiB back to the kernel at once: the
# data-moving workers keep a few for reuse (agent/alloccache.h).
FLAVOR_CFLAGS += -DHP_ALLOC_CACHE
# GnuTLS is initialised by homeport when it first needs TLS, not by
# GnuTLS's own constructor at every start (agent/tls.c).
FLAVOR_CFLAGS += -DHP_GNUTLS_STATIC
FLAVOR_LDFLAGS += -Wl,--wrap=malloc -Wl,--wrap=free
# The link map of homeport itself (not of the unit tests): make size reads it.
BIN_LDFLAGS := -Wl,-Map=build/static/homeport.map $(ORDER_LDFLAGS)
FLAVOR_LIBS := $(STATIC_LIBS)
else ifneq ($(FLAVOR),)
PKGS := mount blkid libnbd libcurl fuse3
CC := gcc
FLAVOR_CFLAGS := $(shell pkg-config --cflags $(PKGS))
FLAVOR_LIBS := $(shell pkg-config --libs $(PKGS)) -lmbedcrypto
ifeq ($(FLAVOR),asan)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FLAVOR_CFLAGS += $(SAN) -O1
FLAVOR_LDFLAGS := $(SAN)
endif
# libFuzzer targets (tests/fuzz/): the agent's objects with coverage
# instrumentation, each target linked with libFuzzer's main.
ifeq ($(FLAVOR),fuzz)
CC := clang
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FLAVOR_CFLAGS += $(SAN) -fsanitize=fuzzer-no-link -O1
FLAVOR_LDFLAGS := $(SAN) -fsanitize=fuzzer
endif
endif

B := build/$(FLAVOR)
OBJS := $(patsubst agent/%.c,$(B)/obj/%.o,$(SRCS))
LIB_OBJS := $(patsubst agent/%.c,$(B)/obj/%.o,$(LIBOBJS))
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRCS))

$(B)/obj/main.o: build/version.h

$(B)/obj/%.o: agent/%.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC [$(FLAVOR)] $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(FLAVOR_CFLAGS) $(CFLAGS) -c -o $@ $<

# The static flavour relinks when a library in the sysroot is rebuilt.
$(B)/homeport: $(OBJS) $(if $(filter static,$(FLAVOR)),$(wildcard $(SYSROOT)/lib/*.a) agent/hot.order)
	@echo "  LD [$(FLAVOR)] $@"
	$(Q)$(CC) $(FLAVOR_LDFLAGS) $(BIN_LDFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(FLAVOR_LIBS)

$(B)/tests/%: tests/unit/%.c $(LIB_OBJS) $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC [$(FLAVOR)] $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(FLAVOR_CFLAGS) $(CFLAGS) -Itests/unit $(FLAVOR_LDFLAGS) $(LDFLAGS) \
	    -o $@ $< $(LIB_OBJS) $(FLAVOR_LIBS)

flavor: $(B)/homeport $(UNIT_BINS)

# The same objects linked without GnuTLS (make notls): libnbd's build
# without TLS comes first on the library path.  tls.c alone is compiled
# again, without HP_GNUTLS_STATIC (it would call GnuTLS).
ifeq ($(FLAVOR),static)
NOTLS_OBJS := $(filter-out $(B)/obj/tls.o,$(OBJS)) build/notls/obj/tls.o
build/notls/obj/tls.o: agent/tls.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC [notls] $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(filter-out -DHP_GNUTLS_STATIC,$(FLAVOR_CFLAGS)) $(CFLAGS) -c -o $@ $<
build/notls/homeport: $(NOTLS_OBJS) $(wildcard $(SYSROOT)/lib/*.a $(SYSROOT)/notls/lib/*.a) agent/hot.order
	@test -n "$(STATIC_LIBS_NOTLS)" || { echo "$(SYSROOT)/link.mk has no STATIC_LIBS_NOTLS:" \
	    "rebuild the libraries (make deps)" >&2; exit 1; }
	@mkdir -p $(dir $@)
	@echo "  LD [notls] $@"
	$(Q)$(CC) $(FLAVOR_LDFLAGS) -Wl,-Map=build/notls/homeport.map $(ORDER_LDFLAGS) $(LDFLAGS) \
	    -o $@ $(NOTLS_OBJS) \
	    $(STATIC_LIBS_NOTLS)
endif

FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(B)/%,$(FUZZ_SRCS))

$(B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(LIB_OBJS) $(HDRS)
	@echo "  CC [$(FLAVOR)] $@"
	$(Q)$(CC) $(BASE_CFLAGS) $(FLAVOR_CFLAGS) $(CFLAGS) -Itests/fuzz $(FLAVOR_LDFLAGS) $(LDFLAGS) \
	    -o $@ $< $(LIB_OBJS) $(FLAVOR_LIBS)

fuzz-flavor: $(FUZZ_BINS)

# ---- top-level targets ----------------------------------------------------
$(SYSROOT)/link.mk: deps/build.sh $(wildcard deps/patches/*.patch)
	deps/build.sh $(DEPS_WORK) $(SYSROOT)

deps: $(SYSROOT)/link.mk

build/homeport: $(SYSROOT)/link.mk build/version.h FORCE
	@$(MAKE) --no-print-directory FLAVOR=static flavor
	@cmp -s build/static/homeport $@ || cp build/static/homeport $@

dev: build/version.h
	@$(MAKE) --no-print-directory FLAVOR=dev flavor

asan: build/version.h
	@$(MAKE) --no-print-directory FLAVOR=asan flavor

# After build/homeport: the two share the objects (make -j builds them once).
notls: build/homeport
	@$(MAKE) --no-print-directory FLAVOR=static build/notls/homeport

# The size targets, in bytes (1 MB = 10^6 bytes): make size fails
# when a binary is over its own.
SIZE_MAX_TLS ?= 2500000
SIZE_MAX_NOTLS ?= 1500000
size: build/homeport notls
	@strip -o build/homeport.stripped build/homeport
	@strip -o build/notls/homeport.stripped build/notls/homeport
	@file build/homeport | sed 's/, BuildID[^,]*//'
	@deps/sizes.sh --title "with TLS for NBD" --max $(SIZE_MAX_TLS) build/homeport.stripped \
	    build/static/homeport.map
	@deps/sizes.sh --title "without TLS for NBD" --max $(SIZE_MAX_NOTLS) \
	    build/notls/homeport.stripped build/notls/homeport.map

# `make check` is what CI runs: both the static and the sanitizer binary,
# then every fuzzer for FUZZ_CHECK_SECONDS on its corpus (crash-* inputs
# included: a regression shows at once).
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 20
check:
	tests/install-deps.sh
	$(MAKE) all
	$(MAKE) notls
	$(MAKE) asan
	$(MAKE) fuzz-check
	tests/run static asan

fuzz-build: build/version.h
	@$(MAKE) --no-print-directory FLAVOR=fuzz fuzz-flavor

# The working corpora are under build/fuzz/corpus (the tree's are copied
# there first; new inputs never go into the tree).
fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-check: fuzz-build
	tests/fuzz/run.sh $(FUZZ_CHECK_SECONDS)

demo:
	tests/install-deps.sh
	$(MAKE) all
	tests/demo.sh

# BIN: which binary to install (the tests install the one under test).
BIN ?= build/homeport
install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/homeport
	install -D -m 0644 docs/homeport.8 $(DESTDIR)$(MANDIR)/man8/homeport.8
	install -D -m 0644 docs/homeport.conf.5 $(DESTDIR)$(MANDIR)/man5/homeport.conf.5
	install -D -m 0644 docs/homeport-sync-popup.1 $(DESTDIR)$(MANDIR)/man1/homeport-sync-popup.1
	install -D -m 0644 configs/homeport.conf $(DESTDIR)$(EXAMPLEDIR)/homeport.conf
	install -d $(DESTDIR)$(EXAMPLEDIR)/pam.d
	install -m 0644 configs/pam.d/* $(DESTDIR)$(EXAMPLEDIR)/pam.d/
	install -d $(DESTDIR)$(PAMCONFIGDIR)
	for f in configs/pam-configs/*; do \
	    sed 's|/usr/local/sbin/homeport|$(SBINDIR)/homeport|' $$f > $(DESTDIR)$(PAMCONFIGDIR)/$${f##*/} && \
	    chmod 0644 $(DESTDIR)$(PAMCONFIGDIR)/$${f##*/} || exit 1; done
	install -D -m 0644 configs/ceph/homeport-exporter $(DESTDIR)$(EXAMPLEDIR)/ceph/homeport-exporter
	install -D -m 0644 configs/ceph/homeport-exporter.service $(DESTDIR)$(EXAMPLEDIR)/ceph/homeport-exporter.service
	install -D -m 0755 init.d/homeport $(DESTDIR)$(SYSCONFDIR)/init.d/homeport
	sed -i 's|^DAEMON=/usr/local/sbin/homeport$$|DAEMON=$(SBINDIR)/homeport|' $(DESTDIR)$(SYSCONFDIR)/init.d/homeport
	install -D -m 0644 init.d/homeport.service $(DESTDIR)$(SYSTEMDUNITDIR)/homeport.service
	sed -i 's|/usr/local/sbin/homeport|$(SBINDIR)/homeport|g' $(DESTDIR)$(SYSTEMDUNITDIR)/homeport.service
	install -D -m 0755 configs/homeport-sync-popup $(DESTDIR)$(BINDIR)/homeport-sync-popup
	install -D -m 0644 configs/Xsession.d/95homeport-sync-popup $(DESTDIR)$(SYSCONFDIR)/X11/Xsession.d/95homeport-sync-popup
	sed -i 's|/usr/local/bin/homeport-sync-popup|$(BINDIR)/homeport-sync-popup|' $(DESTDIR)$(SYSCONFDIR)/X11/Xsession.d/95homeport-sync-popup
	install -D -m 0644 configs/sync-exclude $(DESTDIR)$(EXAMPLEDIR)/sync-exclude
	install -D -m 0644 configs/sync-exclude $(DESTDIR)$(SYSCONFDIR)/homeport/sync-exclude
	install -D -m 0644 configs/sync-exclude.local.example $(DESTDIR)$(EXAMPLEDIR)/sync-exclude.local.example
	install -D -m 0755 initramfs-hooks/initramfs-tools/hooks/homeport $(DESTDIR)$(INITRAMFSDIR)/hooks/homeport
	install -D -m 0755 initramfs-hooks/initramfs-tools/scripts/init-premount/homeport $(DESTDIR)$(INITRAMFSDIR)/scripts/init-premount/homeport
	install -D -m 0755 initramfs-hooks/dracut/95homeport/module-setup.sh $(DESTDIR)$(DRACUTDIR)/95homeport/module-setup.sh
	install -D -m 0755 initramfs-hooks/dracut/95homeport/homeport-start.sh $(DESTDIR)$(DRACUTDIR)/95homeport/homeport-start.sh
	@if [ ! -e $(DESTDIR)$(SYSCONFDIR)/homeport.conf ]; then \
	    install -D -m 0644 configs/homeport.conf $(DESTDIR)$(SYSCONFDIR)/homeport.conf; \
	else echo "kept existing $(DESTDIR)$(SYSCONFDIR)/homeport.conf"; fi

# The Debian package (debian/): build/deb/homeport_VERSION_ARCH.deb, with
# its .changes and .buildinfo (the last build's only).  DEB_VERSION=V packages version V instead of
# debian/changelog's (the package test builds two versions this way).
DEB_DIR := build/deb
deb:
	@mkdir -p $(DEB_DIR) && rm -f $(DEB_DIR)/*
	HOMEPORT_DEB_VERSION=$(DEB_VERSION) dpkg-buildpackage --no-sign -b \
	    --buildinfo-option=-u$(DEB_DIR) --changes-option=-u$(DEB_DIR) \
	    --buildinfo-file=$(DEB_DIR)/homeport.buildinfo --changes-file=$(DEB_DIR)/homeport.changes

# What format and lint cover (cppcheck walks agent/ and its subdirectories).
LINT_FILES = agent/*.c agent/*.h agent/sync/*.c agent/sync/*.h tests/unit/*.c tests/unit/*.h \
             tests/fuzz/*.c tests/fuzz/*.h bench/*.c

format:
	clang-format -i $(LINT_FILES)

lint:
	clang-format --dry-run --Werror $(LINT_FILES)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --suppress=missingIncludeSystem -D_GNU_SOURCE -Iagent agent tests/unit tests/fuzz
	clang-tidy --quiet --warnings-as-errors='*' $(SRCS) -- -std=gnu11 -D_GNU_SOURCE \
	    -Iagent -Ibuild $(shell pkg-config --cflags mount blkid libnbd libcurl fuse3)
	tests/funclen.sh $(FUNCLEN_MAX) agent > /dev/null || tests/funclen.sh $(FUNCLEN_MAX) agent

FUNCLEN_MAX ?= 120
funclen:
	tests/funclen.sh $(FUNCLEN_MAX) agent

clean:
	rm -rf build/static build/notls build/dev build/asan build/fuzz build/homeport \
	    build/homeport.stripped

distclean:
	rm -rf build
