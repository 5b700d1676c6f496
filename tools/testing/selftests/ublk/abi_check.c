// SPDX-License-Identifier: GPL-2.0
/*
 * abi_check: compare the project's ublk_cmd.h with Linux 6.1's, entry by
 * entry (sizes, offsets, field sizes and signedness, constant values, sizes
 * and signedness, inline helper results), and check the literal facts about
 * the later-upstream additions.
 *
 *	abi_check	compare; print each mismatch and a summary; exit 0/1
 *	abi_check -v	also print every entry
 *	abi_check -l	list the entry names and exit
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "abi_list.h"

int main(int argc, char *argv[])
{
	const struct abi_entry *ours, *sys;
	const struct abi_fact *facts;
	unsigned int nr_ours, nr_sys, nr_facts, i;
	unsigned int bad = 0, bad_facts = 0;
	int verbose = 0, list = 0, opt;

	while ((opt = getopt(argc, argv, "vl")) != -1) {
		switch (opt) {
		case 'v':
			verbose = 1;
			break;
		case 'l':
			list = 1;
			break;
		default:
			fprintf(stderr, "usage: %s [-v] [-l]\n", argv[0]);
			return 2;
		}
	}

	ours = abi_ours_table(&nr_ours);
	sys = abi_sys_table(&nr_sys);
	facts = abi_ours_facts(&nr_facts);
	if (!ours || !sys) {
		fprintf(stderr, "abi_check: out of memory\n");
		return 2;
	}
	/* both come from the same list; anything else is a build mix-up */
	if (nr_ours != nr_sys) {
		fprintf(stderr, "abi_check: tables differ in length (%u vs %u)\n",
			nr_ours, nr_sys);
		return 1;
	}

	if (list) {
		for (i = 0; i < nr_sys; i++)
			printf("%s\n", sys[i].name);
		return 0;
	}

	for (i = 0; i < nr_sys; i++) {
		if (strcmp(ours[i].name, sys[i].name)) {
			printf("MISMATCH entry %u: name %s vs %s\n",
			       i, ours[i].name, sys[i].name);
			bad++;
			continue;
		}
		if (ours[i].value != sys[i].value) {
			printf("MISMATCH %s: ours 0x%llx (%lld), 6.1 0x%llx (%lld)\n",
			       sys[i].name, ours[i].value,
			       (long long)ours[i].value, sys[i].value,
			       (long long)sys[i].value);
			bad++;
		} else if (verbose) {
			printf("same     %s = 0x%llx\n", sys[i].name,
			       sys[i].value);
		}
	}

	for (i = 0; i < nr_facts; i++) {
		if (facts[i].got != facts[i].want) {
			printf("WRONG    %s: ours 0x%llx, upstream 0x%llx\n",
			       facts[i].name, facts[i].got, facts[i].want);
			bad_facts++;
		} else if (verbose) {
			printf("fact     %s = 0x%llx\n", facts[i].name,
			       facts[i].got);
		}
	}

	printf("abi_check: %u entries compared with Linux 6.1, %u mismatch%s; "
	       "%u upstream facts, %u wrong\n", nr_sys, bad,
	       bad == 1 ? "" : "es", nr_facts, bad_facts);
	return (bad || bad_facts) ? 1 : 0;
}
