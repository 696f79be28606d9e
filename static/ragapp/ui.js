// Small progressive behaviours of the ask and API keys pages; they work without them.
// Rendering stays on the server: nothing here builds markup from data.
(function () {
  "use strict";

  function copyFrom(source, button) {
    function say(label) {
      button.textContent = label;
      setTimeout(function () { button.textContent = button.dataset.label; }, 2000);
    }
    // The Clipboard API exists only on secure origins (a LAN host over plain
    // http has none) and a browser may refuse it: then select the text and
    // copy the old way, or leave it selected for Ctrl+C.
    function bySelection() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (error) { copied = false; }
      say(copied ? "Copied" : "Selected: press Ctrl+C");
    }
    if (navigator.clipboard && window.isSecureContext) {
      // A browser may also leave the promise unsettled (a permission it
      // never asks about): after a second, the selection way instead.
      var settled = false;
      var once = function (then) {
        return function () { if (!settled) { settled = true; then(); } };
      };
      var viaSelection = once(bySelection);
      setTimeout(viaSelection, 1000);
      navigator.clipboard.writeText(source.innerText).then(once(function () { say("Copied"); }), viaSelection);
    } else {
      bySelection();
    }
  }

  function showCopyButtons(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
    });
  }

  // The citation link that opened the side panel, where focus goes back to
  // when the panel closes.
  var opener = null;

  function closePanel() {
    var panel = document.getElementById("source-panel");
    if (!panel || !panel.classList.contains("open")) return;
    var hadFocus = panel.contains(document.activeElement) ||
      document.activeElement === document.body;
    panel.replaceChildren();
    panel.classList.remove("open");
    if (!hadFocus) return;
    var back = opener;
    if (back && !back.isConnected) {
      // A live answer's turn is rendered again when it ends: find the link anew.
      back = document.querySelector('a[href="' + CSS.escape(opener.getAttribute("href")) + '"]');
    }
    back = back || document.getElementById("question");
    if (back) back.focus();
  }

  document.addEventListener("click", function (event) {
    // A citation opens in the side panel; without JS its link opens a page.
    var cite = event.target.closest("a.cite, a.source");
    if (cite && window.htmx && document.getElementById("source-panel") &&
        !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
      event.preventDefault();
      opener = cite;
      htmx.ajax("GET", cite.getAttribute("href"), {target: "#source-panel", swap: "innerHTML"});
      return;
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      if (source) {
        // The button's own label comes back, whichever it is ("Copy answer",
        // "Copy key"), and survives a second click within the two seconds.
        copy.dataset.label = copy.dataset.label || copy.textContent;
        copyFrom(source, copy);
      }
      return;
    }
    if (event.target.closest("[data-close-panel]")) closePanel();
  });

  document.addEventListener("keydown", function (event) {
    // Escape closes the source panel, except in a field outside it, where
    // Escape already means something (a search box clears itself).
    if (event.key === "Escape" && !event.defaultPrevented) {
      var panel = document.getElementById("source-panel");
      var field = event.target.closest && event.target.closest("input, textarea, select");
      if (panel && panel.classList.contains("open") &&
          (!field || panel.contains(field))) {
        event.preventDefault();
        closePanel();
      }
      return;
    }
    // Ctrl+Enter (or Cmd+Enter) sends the question.
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) &&
        event.target.id === "question") {
      event.preventDefault();
      event.target.form.requestSubmit();
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form.id !== "ask-form") return;
    var question = form.querySelector("#question");
    if (event.detail.successful && event.detail.target &&
        event.detail.target.id === "turns") {
      question.value = "";
      var turns = document.getElementById("turns");
      if (turns.lastElementChild) turns.lastElementChild.scrollIntoView({block: "nearest"});
    }
    // The Ask button is disabled while the question posts, which drops its
    // focus on <body>: a keyboard user would start again from the top of the
    // page. The next question (or the corrected one) is typed here.
    var active = document.activeElement;
    if (!active || active === document.body || form.contains(active)) {
      question.focus({preventScroll: true});
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target) return;
    showCopyButtons(target.parentElement || document);
    if (target.id === "source-panel") {
      target.classList.add("open");
      target.querySelectorAll("[data-close-panel]").forEach(function (b) { b.hidden = false; });
      var heading = target.querySelector("h2");
      if (heading) {
        heading.setAttribute("tabindex", "-1");
        heading.focus({preventScroll: true});
        target.scrollIntoView({block: "nearest"});
      }
    }
  });

  // A live answer whose connection dropped says so while it reconnects.
  document.addEventListener("htmx:sseError", function (event) {
    var live = event.detail.elt.closest(".answer.live");
    if (live) live.classList.add("reconnecting");
  });
  document.addEventListener("htmx:sseOpen", function (event) {
    var live = event.detail.elt.closest(".answer.live");
    if (live) live.classList.remove("reconnecting");
  });

  showCopyButtons(document);
})();
