// The admin page's little JavaScript: the jobs list refreshes itself, a job's log streams.
"use strict";

function refreshJobs(table) {
  const body = table.querySelector("tbody");
  const note = document.getElementById("jobs-updated");
  let last = body.innerHTML;
  async function tick() {
    try {
      const answer = await fetch(table.dataset.rowsUrl, { credentials: "same-origin" });
      if (answer.redirected || answer.status === 401 || answer.status === 403) {
        note.textContent = "Your session ended: sign in again to see new jobs.";
        return;
      }
      if (answer.ok) {
        const rows = await answer.text();
        // Only when something changed: a replaced row would lose the keyboard focus.
        if (rows !== last) {
          body.innerHTML = rows;
          last = rows;
        }
        note.textContent = "Updated " + new Date().toLocaleTimeString();
      }
    } catch (err) {
      note.textContent = "Cannot reach syncbus; retrying.";
    }
    window.setTimeout(tick, 2000);
  }
  window.setTimeout(tick, 2000);
}

const TERMINAL = ["complete", "error"];
const EVENTS = ["connected", "log", "progress", "complete", "error", "timeout"];

function describe(data) {
  if (data && typeof data.message === "string") return data.message;
  return JSON.stringify(data);
}

function followLog(list) {
  const status = document.getElementById("job-status");
  const source = new EventSource(list.dataset.eventsUrl);
  function add(type, text) {
    const item = document.createElement("li");
    item.className = "ev ev-" + type;
    const label = document.createElement("span");
    label.className = "ev-type";
    label.textContent = type;
    item.append(label, " ", text);
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }
  for (const type of EVENTS) {
    source.addEventListener(type, (event) => {
      // A lost connection also fires "error", without data: the browser reconnects (onerror).
      if (typeof event.data !== "string") return;
      let data = null;
      try { data = JSON.parse(event.data); } catch (err) { data = event.data; }
      add(type, describe(data));
      if (TERMINAL.includes(type)) {
        source.close();  // else the browser reconnects to a finished stream
        status.textContent = type === "complete" ? "succeeded" : "failed";
        status.className = "status status-" + type;
      }
    });
  }
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) add("closed", "the stream was closed; reload to follow again");
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("jobs");
  if (table) refreshJobs(table);
  const log = document.getElementById("log");
  if (log) followLog(log);
});
