// Drag-and-drop upload with a progress bar per file. Without this script the
// form is a plain multipart upload. Each file goes up on its own request; the
// server answers with the file's row (rendered HTML), which htmx swaps in and
// keeps live until the document is indexed.
(function () {
  "use strict";
  var form = document.querySelector("[data-upload]");
  if (!form || !window.XMLHttpRequest || !window.htmx) return;
  var zone = form.querySelector("[data-dropzone]");
  var input = form.querySelector("input[type=file]");
  var list = document.getElementById("upload-progress");
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var pending = 0;

  function send(file) {
    var item = document.createElement("li");
    var name = document.createElement("span");
    var bar = document.createElement("progress");
    name.textContent = file.name + " ";
    bar.max = 100;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    item.append(name, bar);
    list.prepend(item);
    var data = new FormData();
    data.append("files", file);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-CSRFToken", token);
    xhr.setRequestHeader("HX-Request", "true");
    xhr.setRequestHeader("HX-Current-URL", window.location.href);
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) bar.value = Math.round(100 * event.loaded / event.total);
    });
    xhr.addEventListener("load", function () {
      // Signed out meanwhile, or no longer an admin: show that page whole.
      var redirect = xhr.getResponseHeader("HX-Redirect");
      if (redirect) { window.location.assign(redirect); return; }
      if (xhr.getResponseHeader("HX-Refresh") === "true") { window.location.reload(); return; }
      if (xhr.status === 200) {
        htmx.swap(item, xhr.responseText, {swapStyle: "outerHTML"});
      } else {
        name.textContent = file.name + ": upload refused (" + (xhr.status === 413 ? "too large" : xhr.statusText || xhr.status) + ")";
        bar.remove();
      }
      done();
    });
    xhr.addEventListener("error", function () {
      name.textContent = file.name + ": the upload failed; check the connection and try again.";
      bar.remove();
      done();
    });
    pending += 1;
    xhr.send(data);
  }

  function done() {
    pending -= 1;
    if (pending === 0) {
      htmx.ajax("GET", window.location.pathname, {target: "#documents", swap: "outerHTML"});
    }
  }

  function sendAll(files) {
    Array.prototype.forEach.call(files, send);
    input.value = "";
  }

  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    sendAll(event.dataTransfer.files);
  });
  form.addEventListener("submit", function (event) {
    if (!input.files.length) return;
    event.preventDefault();
    sendAll(input.files);
  });
})();
