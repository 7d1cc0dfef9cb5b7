// Loaded before require.js on pages with widgets: resolve the ipywidgets HTML manager (and the
// fonts it loads relative to itself) to the copy in this book's _static/widgets folder.
(function () {
  var here = document.currentScript && document.currentScript.src;
  var base = here ? here.replace(/[^/]*$/, "") : "_static/";
  window.require = window.require || {};
  window.require.paths = window.require.paths || {};
  window.require.paths["@jupyter-widgets/html-manager/dist"] = base + "widgets";
})();
