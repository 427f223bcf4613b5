// /embed/{id}?token=: the <latentcast-preview> component filling an iframe. Its events are also
// posted to the parent page as {source: "latentcast", type, detail}, so an embedder can follow
// progress without a script of ours on its page.

import "../embed.js";

const preview = document.getElementById("preview");
const match = location.pathname.match(/^\/embed\/([^/]+)\/?$/);
const token = new URLSearchParams(location.search).get("token");
if (token) preview.setAttribute("token", token);
if (match) preview.setAttribute("task", decodeURIComponent(match[1]));

for (const type of ["progress", "status", "done", "error"]) {
  preview.addEventListener(type, (event) => {
    if (window.parent !== window) window.parent.postMessage({ source: "latentcast", type, detail: event.detail }, "*");
  });
}
