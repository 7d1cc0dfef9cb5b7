// ipywidgets 8 typesets maths in widget labels with MathJax 2's MathJax.Hub.Queue(["Typeset",
// MathJax.Hub, element]). The book loads MathJax 3, which has no Hub: map the call onto
// MathJax.typesetPromise so that widget labels are typeset and nothing throws.
(function () {
  var MJ = window.MathJax;
  if (!MJ || MJ.Hub || !MJ.startup) return;
  MJ.Hub = {
    Queue: function () {
      var elements = [];
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job)) {
          job.forEach(function (x) { if (x && x.nodeType === 1) elements.push(x); });
        } else if (job && job.nodeType === 1) {
          elements.push(job);
        }
      }
      return MJ.startup.promise.then(function () {
        return MJ.typesetPromise ? MJ.typesetPromise(elements.length ? elements : undefined) : null;
      });
    },
  };
})();
