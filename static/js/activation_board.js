// The live activation board: per agency, who was notified through what, delivered, answered,
// ETA, and how long each took. Rows arrive over /ws/activations/<id>/ and are upserted by id;
// after a reconnect the whole board is fetched again, so a dropped message is never missed for long.
(function () {
  "use strict";
  const root = document.getElementById("activation-board");
  if (!root) return;
  const id = root.dataset.activation;
  const zone = root.dataset.zone || "UTC";
  const state = { activation: null, notifications: new Map(), answers: new Map() };

  function load(board) {
    // A live message carries "activation" when more than delivery rows changed; the API's board
    // is the activation itself.
    if (board.activation) state.activation = board.activation;
    else if (board.targets) state.activation = board;
    if (board.complete) state.notifications.clear();
    (board.notifications || []).forEach((n) => state.notifications.set(n.id, n));
    (board.acknowledgements || []).forEach((a) => state.answers.set(a.id, a));
    render();
  }

  function time(value) {
    if (!value) return "";
    return new Date(value).toLocaleTimeString("en-GB", { timeZone: zone });
  }
  function took(seconds) { return seconds == null ? "" : ` (+${seconds}s)`; }
  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function render() {
    const a = state.activation;
    if (!a) return;
    const overdue = a.status === "open" && new Date(a.response_deadline) < new Date();
    document.getElementById("activation-status").textContent =
      a.status + (overdue ? " (response deadline passed)" : "");
    root.replaceChildren();
    for (const target of a.targets) {
      const section = document.createElement("section");
      section.dataset.agency = target.agency;
      section.className = "board-agency";
      section.append(text("h2", `${target.agency_name}: ${target.state.replace("_", " ")}`));
      const table = document.createElement("table");
      table.innerHTML = "<thead><tr><th>Person</th><th>Step</th><th>Channel</th><th>State</th><th>Sent</th><th>Delivered</th><th>Answer</th></tr></thead>";
      const body = document.createElement("tbody");
      const answers = new Map();
      state.answers.forEach((ans) => answers.set(ans.user, ans));
      const rows = [...state.notifications.values()].filter((n) => n.target === target.id)
        .sort((x, y) => x.recipient_name.localeCompare(y.recipient_name) || x.id - y.id);
      for (const n of rows) {
        const tr = document.createElement("tr");
        tr.dataset.notification = n.id;
        tr.dataset.state = n.state;
        const ans = answers.get(n.recipient);
        tr.append(
          text("td", n.recipient_name),
          text("td", n.step),
          text("td", n.channel),
          text("td", n.state + (n.failure_reason ? `: ${n.failure_reason}` : ""), `state-${n.state}`),
          text("td", time(n.sent_at) + took(n.seconds_to_sent)),
          text("td", time(n.delivered_at) + took(n.seconds_to_delivered)),
          text("td", ans ? `${ans.summary} at ${time(ans.created_at)}${took(ans.seconds_after_activation)}` : ""),
        );
        body.append(tr);
      }
      if (!rows.length) {
        const tr = document.createElement("tr");
        const td = text("td", "Nobody notified yet (no one on call?)");
        td.colSpan = 7;
        tr.append(td);
        body.append(tr);
      }
      table.append(body);
      section.append(table);
      root.append(section);
    }
  }

  async function refetch() {
    const response = await fetch(`/api/v1/activations/${id}/board/`, { credentials: "same-origin" });
    if (response.ok) {
      state.notifications.clear();
      load(await response.json());
    }
  }

  let delay = 500;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/activations/${id}/`);
    const live = document.getElementById("board-live");
    socket.onopen = () => { delay = 500; live.textContent = "live"; refetch(); };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "activation.board") load(message);
    };
    socket.onclose = (event) => {
      live.textContent = "reconnecting…";
      if (event.code >= 4400 && event.code < 4500) { live.textContent = "not allowed"; return; }
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  const cancel = document.getElementById("activation-cancel");
  if (cancel) {
    cancel.addEventListener("click", async () => {
      if (!confirm("Stand this activation down?")) return;
      const csrf = (document.cookie.match(/csrftoken=([^;]+)/) || [])[1] || "";
      await fetch(`/api/v1/activations/${id}/cancel/`, {
        method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf },
      });
      cancel.remove();
      refetch();
    });
  }

  load(JSON.parse(document.getElementById("activation-board-data").textContent));
  connect();
})();
