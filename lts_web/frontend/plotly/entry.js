'use strict';
// Plotly.js core (which always holds `scatter`) and the two WebGL traces of the search pages: every trace type the
// project's pages draw. Another type in a page needs its module here and a rebuild (see build.js).
var Plotly = require('plotly.js/lib/core');

Plotly.register([require('plotly.js/lib/scattergl'), require('plotly.js/lib/scatter3d')]);

module.exports = Plotly;
