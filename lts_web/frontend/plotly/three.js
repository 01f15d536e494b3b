// The 3-D trace, loaded on demand by Plotly.load3d() (entry.js).
export default require('plotly.js/lib/scatter3d');
