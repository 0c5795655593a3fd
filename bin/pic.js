#!/usr/bin/env node
import "../dist/compiler/cli.js"
