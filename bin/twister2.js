#!/usr/bin/env node
import { start } from '../dist/cli/entry.js';

start(process.argv.slice(2));
