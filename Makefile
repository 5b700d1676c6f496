# SPDX-License-Identifier: GPL-2.0
#
# ublk, built out of tree against Debian's 6.1 kernel headers and tested in
# QEMU booting Debian's own 6.1 kernel (tools/testing/ublk-vm/).
#
#   make                 module + selftests
#   make setup           install packages, fetch the matching kernel image
#   make check           setup, build, boot the VM, run every selftest
#   make check T=recover        only tests whose name matches (glob or substring)
#   make check KERNEL=debug     the same on the debug kernel (KASAN, lockdep,
#                        KFENCE, kmemleak, ...), built once from linux-source-6.1
#   make check-debug     the debug kernel's CI lane: the tests of
#                        tools/testing/ublk-vm/debug-lane.list
#   make demo / make bench      run tools/testing/ublk-vm/{demo,bench-guest}.sh in the VM
#   make bench BENCH_QUICK=1    BENCH_* knobs reach the guest (tools/testing/ublk-vm/BENCH.md)
#   make ab [BASE=rev]   same-boot A/B: the working tree's driver against BASE's (HEAD)
#   make ab-ref          same-boot: ours against Linux 6.1's own module, with
#                        kublk and ublksrv (make bench BENCH_PARTS=ref)
#   make soak [CYCLES=1000] [SEED=1]  crash/recover soak (test_soak_01.sh) in the VM
#   make checkpatch / make sparse   style and static checks of the driver
#   make deb             ublk-dkms_<version>_all.deb into results/deb/ (lintian)
#   make patches         the patch series against Debian's linux-source-6.1
#                        into results/patches/ (PATCHES_DIR=)
#   make check-deb       the package on this host (dpkg -i, dkms), the VM with
#                        dkms' module, dpkg -r
#   make check-patches   git am the series onto linux-source-6.1, build after
#                        each patch, in-tree build with Debian's config,
#                        checkpatch --strict, kselftest build through lib.mk
#   make check-kselftest the patched tree's kselftests (run_tests) in the VM
#   make check-ship      the three above, one "N passed, N failed" (CI's lane)
#   make fuzz OPS=N SEEDS="1 2"|1-20 [PROCS=P] [FUZZ_TIME=S] [WITHOUT=classes]
#                        long ublk_fuzz campaign in the VM (test_fuzz_01's verdict)
#
# KDIR defaults to /usr/src/linux-headers-<abi>-amd64 of linux-headers-amd64.

VM := tools/testing/ublk-vm
HARNESS := $(VM)/run.sh

ifeq ($(origin KDIR),undefined)
KDIR := $(shell $(VM)/setup.sh kdir 2>/dev/null)
endif

all: module selftests

module:
	@test -n "$(KDIR)" || { echo "no kernel headers: run 'make setup' or set KDIR"; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR)/drivers/block modules

selftests:
	$(MAKE) -C tools/testing/selftests/ublk

setup:
	$(VM)/setup.sh

check:
	UBLK_KERNEL='$(KERNEL)' $(HARNESS) check $(foreach p,$(T) $(TESTS),'$(p)')

check-debug:
	UBLK_KERNEL=debug $(HARNESS) check $(shell sed 's/#.*//' $(VM)/debug-lane.list)

demo:
	$(HARNESS) guest $(VM)/demo.sh

bench:
	$(VM)/bench-run.sh

ab:
	$(VM)/ab-run.sh $(BASE)

ab-ref:
	BENCH_PARTS=ref $(VM)/bench-run.sh

CYCLES ?= 1000
SEED ?= 1
soak:
	UBLK_VM_TIMEOUT=$$(( $(CYCLES) * 30 + 600 )) \
		$(HARNESS) guest $(VM)/soak.sh $(CYCLES) $(SEED)

OPS ?= 200000
SEEDS ?= 1-5
PROCS ?= 3
fuzz:
	$(HARNESS) guest $(VM)/fuzz-guest.sh '$(OPS)' '$(SEEDS)' '$(PROCS)' '$(FUZZ_TIME)' '$(WITHOUT)'

checkpatch:
	$(HARNESS) checkpatch

PATCHES_DIR ?= results/patches
deb:
	tools/ublk-dkms/mkdeb.sh results/deb

patches:
	$(VM)/series.sh make $(PATCHES_DIR)

check-deb check-patches check-kselftest check-ship:
	$(VM)/ship-check.sh $(patsubst check-%,%,$@)

sparse:
	$(HARNESS) sparse

clean:
	@if [ -n "$(KDIR)" ] && [ -d "$(KDIR)" ]; then \
		$(MAKE) -C $(KDIR) M=$(CURDIR)/drivers/block clean; fi
	@if [ -f tools/testing/selftests/ublk/Makefile ]; then \
		$(MAKE) -C tools/testing/selftests/ublk clean; fi

.PHONY: all module selftests setup check check-debug demo bench ab ab-ref soak fuzz checkpatch sparse clean \
	deb patches check-deb check-patches check-kselftest check-ship
