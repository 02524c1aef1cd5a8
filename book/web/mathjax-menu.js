// The MathJax menu of the website offers only what works offline (see _ext/offline_site.py).
//
// The site ships every file the menu can load (the SVG renderer, the accessibility extensions
// and the speech rule engine's language files). One item still fails: Accessibility > Activate
// (the expression explorer) makes MathJax 3.2.2 re-typeset every equation of the page away, and
// MathJax remembers the choice, so that every later page would show no math at all. So the
// explorer, the speech settings that only it uses and the speech Language menu are hidden, and
// a stored choice of the explorer is forgotten before MathJax starts. Screen readers still get
// each equation as MathML (Accessibility > Include Hidden MathML, on by default).
(function () {
  "use strict";
  const KEY = "MathJax-Menu-Settings";
  try {
    const stored = JSON.parse(localStorage.getItem(KEY) || "{}");
    if ("explorer" in stored) {
      delete stored.explorer;
      localStorage.setItem(KEY, JSON.stringify(stored));
    }
  } catch (error) {
    // no storage (a private window), or not MathJax's: nothing remembered to forget
  }
  const EXPLORER_ONLY = ["Activate", "Speech", "Highlight", "Magnification", "Semantic Info"];
  window.addEventListener("load", function () {
    const startup = window.MathJax && window.MathJax.startup;
    if (!startup || !startup.promise) return;  // a page without math
    startup.promise.then(function () {
      const menu = startup.document.menu && startup.document.menu.menu;
      if (!menu) return;
      const item = function (items, id) { return items.find(function (i) { return i.id === id; }); };
      const accessibility = item(menu.items, "Accessibility").submenu.items;
      for (const id of EXPLORER_ONLY) item(accessibility, id).hide();
      item(menu.items, "Language").hide();
    });
  });
})();
