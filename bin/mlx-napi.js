#!/usr/bin/env node
// The `mlx-napi` command: see bin/cli/program.js for the commands.
'use strict'
require('./cli/program.js').main(process.argv)
