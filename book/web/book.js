/* Layout help for every page of the website (loaded by _ext/offline_site.py).
 *
 * On a narrow screen a figure drawn for the desktop column (up to ~1,100 px wide) would be
 * shrunk to a third of its size, its labels to 3 px. Here a figure is never shown below 60% of
 * the size it was drawn for: a wider one keeps that size and scrolls sideways inside its own
 * box, with the scroll cue of book.css. */
(function () {
  "use strict";
  const SMALLEST = 0.6;  // of the drawn size

  function fit(img) {
    const box = img.parentElement;
    if (!img.naturalWidth || !box) return;
    box.classList.remove("book-scroll");
    img.style.width = "";
    const column = box.clientWidth;
    if (img.naturalWidth * SMALLEST > column) {
      box.classList.add("book-scroll");
      img.style.width = Math.round(img.naturalWidth * SMALLEST) + "px";
    }
  }

  function fitAll() {
    document.querySelectorAll("article.bd-article .cell_output img").forEach((img) => {
      if (img.complete) fit(img);
      else img.addEventListener("load", () => fit(img), { once: true });
    });
  }

  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(fitAll, 100);
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fitAll);
  else fitAll();
})();
