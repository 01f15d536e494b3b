// Rebuilds ../../static/plotly/ (committed: the pages need no build step, and no CDN): plotly-lts.js, the module the
// pages load (core, scatter, scattergl), the chunk it shares with the 3-D trace, and the 3-D trace's own chunk, which
// a page fetches only when it draws a 3-D view (Plotly.load3d()).
//
//     cd lts_web/frontend/plotly && npm ci && npm run build
//
// The same esbuild plugins, aliases and defines as plotly.js's own dist bundles (its esbuild-config.js), with entry.js
// as the entry.
// Why a custom bundle: the full plotly.min.js (4.8 MB, 40 trace types) took 1.4-2.1 s to compile on a cold page
// load here, longer than everything else the search page does before drawing 10,000 candidates (BENCHMARKS.md); the
// one-file bundle of the three trace types (2.0 MB) still compiled scatter3d on every load for a view that is off
// until a user turns it on. Code splitting needs ES modules: the pages load plotly-lts.js with type="module".
const fs = require('fs');
const path = require('path');
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');

const version = require('plotly.js/package.json').version;
const banner = `/**
* plotly.js v${version}, custom bundle for LTS Studio: scatter, scattergl; scatter3d on demand
* (built by lts_web/frontend/plotly/build.js)
* Copyright 2012-2026, Plotly, Inc.
* All rights reserved.
* Licensed under the MIT license
*/`;

const outdir = path.join(__dirname, '..', '..', 'static', 'plotly');
fs.rmSync(outdir, { recursive: true, force: true });  // no stale chunks of an earlier build

esbuild.build({
    entryPoints: { 'plotly-lts': path.join(__dirname, 'entry.js') },
    outdir,
    format: 'esm',
    splitting: true,
    // Chunks carry their content hash: the imports between the files are not rewritten by Django's manifest storage
    // (plotly-lts.js itself is versioned by it through {% static %}), so a new build must never reuse a chunk's name.
    chunkNames: 'plotly-lts-[name]-[hash]',
    bundle: true,
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    banner: { js: banner },
    plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
    alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
    define: { global: 'window', 'define.amd': 'false' },
    target: 'es2020',  // dynamic import()
    logLevel: 'info',
}).catch(() => process.exit(1));
