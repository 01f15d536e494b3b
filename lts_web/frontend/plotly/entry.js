'use strict';
// Plotly.js core (which always holds `scatter`) and the 2-D WebGL trace: what every page draws on load. The 3-D trace
// (scatter3d and its WebGL scene, a third of the code) is a chunk of its own, fetched and compiled the first time a
// page calls Plotly.load3d(). Another trace type in a page needs its module here (or in three.js) and a rebuild
// (see build.js).
var Plotly = require('plotly.js/lib/core');

Plotly.register([require('plotly.js/lib/scattergl')]);

var loading3d = null;
/** Resolves to Plotly once scatter3d is registered; the chunk is fetched once. */
Plotly.load3d = function () {
    if (!loading3d) {
        loading3d = import('./three.js').then(function (chunk) {
            Plotly.register([chunk.default]);
            return Plotly;
        });
        loading3d.catch(function () { loading3d = null; });  // a failed fetch can be tried again
    }
    return loading3d;
};

// The pages are plain scripts that use the global, as with Plotly.js's own dist bundles.
window.Plotly = Plotly;
export default Plotly;
