"""Property suites (Hypothesis): mutated and random inputs through the commands, plans in
bounded memory, random stage sequences."""
