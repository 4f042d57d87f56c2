// Scroll the sidebar so the current page's entry is in view (furo leaves the sidebar scrolled to the top);
// again once the page has loaded and shortly after, in case the layout changed meanwhile (fonts, images).
function sfShowCurrentPage() {
  const box = document.querySelector(".sidebar-scroll");
  const cur = box && box.querySelector(".sidebar-tree .current-page > a");
  if (!cur) return;
  const r = cur.getBoundingClientRect(), b = box.getBoundingClientRect();
  const top = r.top - b.top, bottom = r.bottom - b.top, view = Math.min(box.clientHeight, window.innerHeight - b.top);
  // "instant": furo scrolls the sidebar smoothly, which would leave the entry out of view for a while
  if (top < 0 || bottom > view) box.scrollTo({top: Math.max(0, box.scrollTop + top - view / 3), behavior: "instant"});
}
document.addEventListener("DOMContentLoaded", sfShowCurrentPage);
window.addEventListener("load", () => { sfShowCurrentPage(); setTimeout(sfShowCurrentPage, 150); });

// ipywidgets' HTML manager typesets labels with the MathJax 2 API (MathJax.Hub.Queue): map it to MathJax 3.
document.addEventListener("DOMContentLoaded", () => {
  const mj = window.MathJax;
  if (!mj || mj.Hub || !mj.startup) return;
  mj.Hub = {Queue: (...jobs) => jobs.forEach(j => {
    if (Array.isArray(j) && j[0] === "Typeset" && j[2]) mj.startup.promise.then(() => mj.typesetPromise([j[2]]));
  })};
});
