# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# The VM of make bench and make ab (sourced by bench-run.sh and
# ab-run.sh). It prices a data copy and a clock read, relative to the rest
# of an I/O, about as hardware does, which the VM of make check does not:
#   - no ERMS: TCG runs `rep movsb`, the kernel's copy on an ERMS CPU,
#     about a byte at a time (a 4 KiB copy: ~10 us, against ~1.2 us with
#     the `rep movsq` the kernel uses without ERMS);
#   - tsc=reliable: the kernel keeps the TSC as its clocksource instead of
#     the emulated HPET, on which every clock read costs microseconds.
# See BENCH.md ("The VM"). UBLK_VM_CPU=max UBLK_VM_APPEND= gives back make
# check's VM.

export UBLK_VM_CPU=${UBLK_VM_CPU:-max,erms=off}
export UBLK_VM_APPEND=${UBLK_VM_APPEND-tsc=reliable}
