// Ask a question and render the streamed answer. Every piece of text from the
// server goes in through textContent, never innerHTML: answers, quotes and
// titles come from documents and models and are shown as text, whatever they say.
(function () {
  "use strict";
  const form = document.getElementById("ask-form");
  if (!form) return;
  const turns = document.getElementById("turns");
  const errorBox = document.getElementById("ask-error");
  const button = form.querySelector("button[type=submit]");

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pages(c) {
    if (!c.page_start) return "";
    return c.page_end && c.page_end !== c.page_start
      ? ", p. " + c.page_start + "–" + c.page_end
      : ", p. " + c.page_start;
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  // Parse server-sent events out of a growing buffer; returns the unparsed rest.
  function drain(buffer, onEvent) {
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n");
      if (data) onEvent(JSON.parse(data));
    }
    return buffer;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const body = new FormData(form);
    const question = String(body.get("question") || "").trim();
    if (!question) return;
    showError("");
    button.disabled = true;

    const turn = el("li", "turn");
    turn.appendChild(el("p", "question", question));
    const answer = el("div", "answer status-answering");
    const text = el("p", "text");
    const citations = el("ol", "citations");
    const note = el("p", "error");
    answer.append(text, citations, note);
    turn.appendChild(answer);
    turns.appendChild(turn);

    function onEvent(e) {
      if (e.type === "started") {
        answer.dataset.answerer = e.answerer;
        if (!form.elements.thread) {
          const hidden = el("input");
          hidden.type = "hidden";
          hidden.name = "thread";
          hidden.value = e.thread_id;
          form.appendChild(hidden);
          const url = form.dataset.threadUrl.replace("/0/", "/" + e.thread_id + "/");
          history.replaceState(null, "", url);
        }
      } else if (e.type === "delta") {
        text.textContent += e.text;
      } else if (e.type === "citation") {
        const item = el("li");
        item.append(
          el("span", "marker", "[" + e.marker + "] "),
          el("strong", "", e.document_title),
          document.createTextNode(pages(e)),
          el("blockquote", "", e.quote.length > 600 ? e.quote.slice(0, 599) + "…" : e.quote)
        );
        citations.appendChild(item);
      } else if (e.type === "finished") {
        answer.className = "answer status-" + e.status;
        if (e.retract) {
          text.textContent = "";
          citations.replaceChildren();
        }
        note.textContent = e.reason || "";
      }
    }

    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: body,
        headers: { "X-CSRFToken": body.get("csrfmiddlewaretoken") },
        credentials: "same-origin",
      });
      if (!response.ok) {
        let message = "The question could not be sent (" + response.status + ").";
        try { message = (await response.json()).error || message; } catch (_) {}
        turn.remove();
        showError(message);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer = drain(buffer + decoder.decode(value, { stream: true }), onEvent);
      }
      form.elements.question.value = "";
    } catch (err) {
      note.textContent = "The connection was lost before the answer was complete.";
    } finally {
      button.disabled = false;
    }
  });
})();
