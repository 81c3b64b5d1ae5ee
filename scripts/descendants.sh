#!/usr/bin/env bash
# Prints the given process ids and those of every process under them, from one snapshot of the
# process table. Parent links, not process groups or sessions: `cargo lambda watch` starts each
# function instance in a session of its own.
ps -e -o pid=,ppid= | awk -v roots="$*" '
  BEGIN { n = split(roots, list, " "); for (i = 1; i <= n; i++) wanted[list[i]] = 1 }
  { parent[$1] = $2 }
  END {
    for (p in parent) {
      for (q = p; q in parent && !(q in wanted) && q > 1; q = parent[q]) {}
      if (q in wanted) print p
    }
  }'
