// Rebuilds ../../static/plotly/plotly-lts.min.js (committed: the pages need no build step, and no CDN).
//
//     cd lts_web/frontend/plotly && npm ci && npm run build
//
// The same esbuild settings as plotly.js's own dist bundles (its esbuild-config.js), with entry.js as the entry.
// Why a custom bundle: the full plotly.min.js (4.8 MB, 40 trace types) took 1.4-2.1 s to compile on a cold page
// load here, longer than everything else the search page does before drawing 10,000 candidates (BENCHMARKS.md).
const path = require('path');
const esbuild = require('esbuild');
const { environmentPlugin } = require('esbuild-plugin-environment');
const { glsl } = require('esbuild-plugin-glsl');
const InlineCSSPlugin = require('esbuild-plugin-inline-css');

const version = require('plotly.js/package.json').version;
const banner = `/**
* plotly.js v${version}, custom bundle for LTS Studio: scatter, scattergl, scatter3d
* (built by lts_web/frontend/plotly/build.js)
* Copyright 2012-2026, Plotly, Inc.
* All rights reserved.
* Licensed under the MIT license
*/`;

esbuild.build({
    entryPoints: [path.join(__dirname, 'entry.js')],
    outfile: path.join(__dirname, '..', '..', 'static', 'plotly', 'plotly-lts.min.js'),
    format: 'iife',
    globalName: 'Plotly',
    bundle: true,
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    banner: { js: banner },
    plugins: [InlineCSSPlugin(), glsl({ minify: true }), environmentPlugin({ NODE_DEBUG: false })],
    alias: { regl: '@plotly/regl', stream: 'stream-browserify' },
    define: { global: 'window', 'define.amd': 'false' },
    target: 'es2016',
    logLevel: 'info',
}).catch(() => process.exit(1));
