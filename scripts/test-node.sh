#!/bin/sh
# The node tests (`npm run test:node`): one test file per core, at least two at
# once. Node's default (cores - 1) runs them one by one on a 2-core machine, and
# each file's MLX work keeps about one core busy. Arguments pass through.
set -e
jobs=$(node -p 'Math.max(2, require("node:os").availableParallelism())')
exec node --test --test-concurrency="$jobs" "$@" __test__/
