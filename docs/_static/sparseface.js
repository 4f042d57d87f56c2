// Scroll the sidebar so the current page's entry is in view (furo leaves the sidebar scrolled to the top);
// again once the page has loaded, in case its layout changed.
function sfShowCurrentPage() {
  const box = document.querySelector(".sidebar-scroll");
  const cur = box && box.querySelector(".sidebar-tree .current-page > a");
  if (!cur) return;
  const r = cur.getBoundingClientRect(), b = box.getBoundingClientRect();
  if (r.top < b.top || r.bottom > b.bottom) box.scrollTop += r.top - b.top - box.clientHeight / 3;
}
document.addEventListener("DOMContentLoaded", sfShowCurrentPage);
window.addEventListener("load", sfShowCurrentPage);

// ipywidgets' HTML manager typesets labels with the MathJax 2 API (MathJax.Hub.Queue): map it to MathJax 3.
document.addEventListener("DOMContentLoaded", () => {
  const mj = window.MathJax;
  if (!mj || mj.Hub || !mj.startup) return;
  mj.Hub = {Queue: (...jobs) => jobs.forEach(j => {
    if (Array.isArray(j) && j[0] === "Typeset" && j[2]) mj.startup.promise.then(() => mj.typesetPromise([j[2]]));
  })};
});
