// `npm run build`, after tsc: replaces the worker runtime's entry files in dist/worker/ with one esbuild bundle
// each, so a worker compiles one file instead of some twenty (measured: 10 ms less CPU per worker).
//
// A bundle must not load what tsc's output loads only sometimes: an `import()` whose module reaches a package
// (zod, tar, got, a cluster client) stays an `import()` of tsc's file in dist/ (bundled, its static package
// imports would be hoisted into the bundle's start). A module that such a file and the bundle both use is
// loaded from dist/ too, so that there is one copy of it (one class for `instanceof`, one state).
// Bundles are written where tsc put the entries, so `new URL(..., import.meta.url)` resolves as before;
// the build fails if a bundled module from another folder uses import.meta.url, or if a bundle would load a package
// at start (the layers test checks the sources for that; this checks what the bundler made of them).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ENTRIES = ['src/worker/main.ts', 'src/worker/plain-main.ts', 'src/worker/heartbeat-thread.ts'];
const OUT = 'dist/worker';
const common = { bundle: true, format: 'esm', platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning' };

for (const entry of ENTRIES) {
  const graph = (await build({ ...common, entryPoints: [entry], outdir: 'unused', splitting: true, write: false, metafile: true })).metafile.inputs;
  const external = loadedFromDist(graph, entry);
  const result = await build({
    ...common,
    entryPoints: [entry],
    outdir: OUT,
    sourcemap: true,
    metafile: true,
    plugins: [{ name: 'from-dist', setup: (b) => b.onResolve({ filter: /^\./ }, (a) => fromDist(a, external)) }],
  });
  const [, out] = Object.entries(result.metafile.outputs).find(([f]) => f.endsWith('.js'));
  const packages = out.imports.filter((i) => i.kind === 'import-statement' && i.external && !i.path.startsWith('node:') && !i.path.startsWith('.'));
  if (packages.length) throw new Error(`${entry}'s bundle would load ${packages.map((i) => i.path).join(', ')} at start`);
  for (const file of Object.keys(result.metafile.inputs)) {
    if (path.dirname(file) !== path.dirname(entry) && readFileSync(file, 'utf8').includes('import.meta.url')) {
      throw new Error(`${file} uses import.meta.url but is bundled into ${OUT}/: load it from dist/ (scripts/bundle.mjs)`);
    }
  }
}

/** The modules of `entry`'s graph to load from dist/: the lazy ones that reach a package, and those shared with them. */
function loadedFromDist(graph, entry) {
  const edges = (f, kinds) => (graph[f]?.imports ?? []).filter((i) => !i.external && kinds.includes(i.kind)).map((i) => i.path);
  const closure = (from, kinds, stop = new Set()) => {
    const seen = new Set();
    const todo = [...from];
    while (todo.length) {
      const f = todo.pop();
      if (seen.has(f) || stop.has(f)) continue;
      seen.add(f);
      todo.push(...edges(f, kinds));
    }
    return seen;
  };
  const reachesPackage = (f) => [...closure([f], ['import-statement'])].some((g) => graph[g].imports.some((i) => i.external && i.kind === 'import-statement' && !i.path.startsWith('node:')));
  const lazy = new Set(Object.values(graph).flatMap((i) => i.imports.filter((x) => !x.external && x.kind === 'dynamic-import').map((x) => x.path)).filter(reachesPackage));
  const all = ['import-statement', 'dynamic-import'];
  const bundled = closure([entry], all, lazy);
  const shared = [...closure(lazy, all)].filter((f) => bundled.has(f));
  return new Set([...lazy, ...shared]);
}

/** An import of a module in `external`: the path from the bundle (in OUT) to tsc's output of that module. */
function fromDist(args, external) {
  const source = path.relative(process.cwd(), path.resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts')));
  if (!external.has(source)) return undefined;
  const built = path.relative(OUT, path.join('dist', path.relative('src', source)).replace(/\.ts$/, '.js'));
  return { path: built.startsWith('.') ? built : `./${built}`, external: true };
}
