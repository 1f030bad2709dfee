// `npm run build`, after tsc: replaces the entry files of the worker runtime and of the CLI with esbuild bundles,
// written where tsc put them (launchers, images and bin/twister2.js are unchanged). Node then resolves and compiles
// a few files instead of dozens (measured: 10 ms less CPU per worker, 90 ms less per CLI start).
//
// Worker runtime: one file per entry, packages not bundled. An `import()` that reaches a package (zod, tar, got)
// stays an `import()` of tsc's file in dist/ (bundled, its static package imports would be hoisted into the
// bundle's start); a module such a file and the bundle both use is loaded from dist/ too, so that one copy of it
// exists (one class for `instanceof`, one state). The build fails if a worker bundle would load a package at start.
// The unpacking code, which one worker per host loads while the others wait for it, is a bundle of its own with
// zod, tar and yauzl in it (measured: 100 -> 38 ms CPU to load).
//
// CLI: split at each `import()` (chunks in dist/cli/), so a command loads only its own code, with the pure-JS
// packages it loads at start bundled in. Not yargs (it finds its locale files and the program's package.json from
// its own place), nor the heavy clients that only some jobs load.
//
// A bundled module from another folder than its entry sees `import.meta.url` as the URL tsc's file of it has.
import { cpSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const common = { bundle: true, format: 'esm', platform: 'node', target: 'node20', sourcemap: true, logLevel: 'warning' };
const CLI_BUNDLED_PACKAGES = ['zod', 'yaml', 'tar', 'yauzl', 'fastest-levenshtein'];
const ALL = ['import-statement', 'dynamic-import'];

const WORKER_OUT = 'dist/worker';
const EXTRACT = { source: 'src/package/extract.ts', bundle: './package-extract.js', packages: ['zod', 'tar', 'yauzl'] };
// Bundled CommonJS (yauzl) requires node's modules.
const requireBanner = { js: "import { createRequire as __twister2Require } from 'node:module'; const require = __twister2Require(import.meta.url);" };

const extractShared = new Set();
for (const entry of ['src/worker/main.ts', 'src/worker/plain-main.ts', 'src/worker/heartbeat-thread.ts']) {
  const graph = (await build({ ...common, entryPoints: [entry], outdir: 'unused', splitting: true, packages: 'external', write: false, metafile: true })).metafile.inputs;
  const external = loadedFromDist(graph, entry);
  if (graph[EXTRACT.source]) {
    const otherwise = closure(graph, [entry], ALL, new Set([EXTRACT.source]));
    for (const f of closure(graph, [EXTRACT.source], ALL)) if (otherwise.has(f)) extractShared.add(f);
  }
  const result = await build({ ...common, entryPoints: [entry], outdir: WORKER_OUT, packages: 'external', metafile: true, plugins: [fromDist(WORKER_OUT, external, { [EXTRACT.source]: EXTRACT.bundle }), distUrls(WORKER_OUT)] });
  const [, bundle] = Object.entries(result.metafile.outputs).find(([f]) => f.endsWith('.js'));
  const packages = bundle.imports.filter((i) => i.kind === 'import-statement' && i.external && !i.path.startsWith('node:') && !i.path.startsWith('.'));
  if (packages.length) throw new Error(`${entry}'s bundle would load ${packages.map((i) => i.path).join(', ')} at start`);
}
// What the unpacking bundle shares with the rest of a worker (errors.js) is loaded from dist/, as the worker bundles do.
await build({
  ...common,
  entryPoints: [EXTRACT.source],
  outfile: path.join(WORKER_OUT, EXTRACT.bundle),
  banner: requireBanner,
  plugins: [onlyBundled(EXTRACT.packages), fromDist(WORKER_OUT, extractShared), distUrls(WORKER_OUT)],
});

const cliOut = outDirOf('src/cli/entry.ts');
for (const f of readdirSync(cliOut)) if (f.startsWith('chunk-')) rmSync(path.join(cliOut, f));
await build({
  ...common,
  entryPoints: ['src/cli/entry.ts'],
  outdir: cliOut,
  splitting: true,
  chunkNames: 'chunk-[hash]',
  banner: requireBanner,
  plugins: [onlyBundled(CLI_BUNDLED_PACKAGES), distUrls(cliOut)],
});

/** Where tsc wrote an entry: the bundle replaces it. */
function outDirOf(entry) {
  return path.join('dist', path.relative('src', path.dirname(entry)));
}

/** tsc's output of a source module, relative to `dir`. */
function distPath(dir, source) {
  const built = path.relative(dir, path.join('dist', path.relative('src', source)).replace(/\.ts$/, '.js'));
  return built.startsWith('.') ? built : `./${built}`;
}

/** The modules `from` reaches in `graph` (esbuild's metafile inputs) through imports of these kinds, not past `stop`. */
function closure(graph, from, kinds, stop = new Set()) {
  const seen = new Set();
  const todo = [...from];
  while (todo.length) {
    const f = todo.pop();
    if (seen.has(f) || stop.has(f)) continue;
    seen.add(f);
    todo.push(...(graph[f]?.imports ?? []).filter((i) => !i.external && kinds.includes(i.kind)).map((i) => i.path));
  }
  return seen;
}

/** The modules of `entry`'s graph to load from dist/: the lazy ones that reach a package, and those shared with them. */
function loadedFromDist(graph, entry) {
  const reachesPackage = (f) => [...closure(graph, [f], ['import-statement'])].some((g) => graph[g].imports.some((i) => i.external && i.kind === 'import-statement' && !i.path.startsWith('node:')));
  const lazy = new Set(Object.values(graph).flatMap((i) => i.imports.filter((x) => !x.external && x.kind === 'dynamic-import').map((x) => x.path)).filter(reachesPackage));
  const bundled = closure(graph, [entry], ALL, lazy);
  const shared = [...closure(graph, lazy, ALL)].filter((f) => bundled.has(f));
  return new Set([...lazy, ...shared]);
}

/** Imports of the modules in `external` go to tsc's output of them, or to the bundle `bundles` names for them. */
function fromDist(out, external, bundles = {}) {
  return {
    name: 'from-dist',
    setup: (b) =>
      b.onResolve({ filter: /^\./ }, (a) => {
        const source = path.relative(process.cwd(), path.resolve(a.resolveDir, a.path.replace(/\.js$/, '.ts')));
        return external.has(source) ? { path: bundles[source] ?? distPath(out, source), external: true } : undefined;
      }),
  };
}

/** Packages other than `bundled` stay imports of node_modules. */
function onlyBundled(bundled) {
  return {
    name: 'only-bundled',
    setup: (b) =>
      b.onResolve({ filter: /^[^./]/ }, (a) => {
        const name = a.path.startsWith('@') ? a.path.split('/').slice(0, 2).join('/') : a.path.split('/')[0];
        return a.path.startsWith('node:') || !bundled.includes(name) ? { path: a.path, external: true } : undefined;
      }),
  };
}

/** In a module bundled into `out` from another folder, `import.meta.url` is made the URL of tsc's file of it. */
function distUrls(out) {
  return {
    name: 'dist-urls',
    setup: (b) =>
      b.onLoad({ filter: /\/src\/.*\.ts$/ }, (a) => {
        const text = readFileSync(a.path, 'utf8');
        const source = path.relative(process.cwd(), a.path);
        if (!text.includes('import.meta.url') || outDirOf(source) === out) return undefined;
        return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(distPath(out, source))}, import.meta.url).href`), loader: 'ts' };
      }),
  };
}

// The dashboard's page (src/dashboard/ui) is served as written: copied next to the compiled server.
cpSync(new URL('../src/dashboard/ui', import.meta.url), new URL('../dist/dashboard/ui', import.meta.url), { recursive: true });
