// In-app activation alerts on every page: a toast with answer buttons, a browser notification
// and a sound. Alerts arrive as the "ctpn:alert" DOM event, which the incident dashboard's socket
// dispatches for {"type": "alert"} messages; a page without that socket (no element carrying
// data-live-socket) opens /ws/me/ itself. Unseen alerts are fetched again on every (re)connect,
// so one pushed while the page was closed or offline still shows.
(function () {
  "use strict";
  if (window.ctpnAlerts) return; // included twice: one listener is enough
  const shown = new Set();
  const ETAS = [10, 20, 30, 60];

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    return { ok: response.ok, data };
  }

  function container() {
    let box = document.getElementById("ctpn-alerts");
    if (!box) {
      box = document.createElement("div");
      box.id = "ctpn-alerts";
      box.setAttribute("aria-live", "assertive");
      document.body.append(box);
    }
    return box;
  }

  function beep() {
    try {
      const audio = new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.35].forEach((start) => {
        const tone = audio.createOscillator();
        const gain = audio.createGain();
        tone.frequency.value = 880;
        gain.gain.value = 0.2;
        tone.connect(gain).connect(audio.destination);
        tone.start(audio.currentTime + start);
        tone.stop(audio.currentTime + start + 0.25);
      });
    } catch (error) { /* autoplay refused until the user interacts: the toast still shows */ }
  }

  function notifyBrowser(alert) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const note = new Notification(alert.title || "CTPN activation", {
        body: alert.message, tag: `ctpn-activation-${alert.activation}`, requireInteraction: true,
      });
      note.onclick = () => { window.focus(); note.close(); };
    } catch (error) { /* some browsers only allow notifications from a service worker */ }
  }

  function button(label, onClick, extra) {
    const el = document.createElement("button");
    el.type = "button";
    el.textContent = label;
    if (extra) el.setAttribute("aria-label", extra);
    el.addEventListener("click", onClick);
    return el;
  }

  function show(alert) {
    if (!alert || !alert.notification || shown.has(alert.notification)) return;
    shown.add(alert.notification);
    const toast = document.createElement("section");
    toast.className = "ctpn-alert-toast";
    toast.setAttribute("role", "alertdialog");
    toast.setAttribute("aria-label", alert.title || "Activation");
    toast.dataset.activation = alert.activation;
    if (alert.is_exercise) toast.classList.add("exercise");
    const title = document.createElement("strong");
    title.textContent = alert.title || "Activation";
    const message = document.createElement("p");
    message.textContent = alert.message || "";
    const actions = document.createElement("div");
    actions.className = "actions";
    const status = document.createElement("p");
    status.setAttribute("role", "status");

    async function answer(response, eta) {
      actions.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      const body = { response };
      if (eta !== undefined) body.eta_minutes = eta;
      const result = await post(`/api/v1/activations/${alert.activation}/acknowledge/`, body);
      if (result.ok) {
        status.textContent = (result.data.created ? "Recorded: " : "Already answered: ") +
          result.data.summary;
        actions.remove();
      } else {
        status.textContent = "Not recorded: " + (result.data.detail || JSON.stringify(result.data));
        actions.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      }
    }

    actions.append(button("Acknowledge", () => answer("acknowledged")));
    ETAS.forEach((minutes) => actions.append(
      button(`ETA ${minutes}`, () => answer("attending", minutes), `Attending, ETA ${minutes} min`)));
    actions.append(button("Cannot attend", () => answer("cannot_attend")));
    actions.append(button("Dismiss", () => toast.remove()));
    if ("Notification" in window && Notification.permission === "default") {
      actions.append(button("Enable notifications", () => Notification.requestPermission()));
    }
    toast.append(title, message, actions, status);
    container().append(toast);
    beep();
    notifyBrowser(alert);
    // Shown on screen: that is delivery for an in-app alert.
    post(`/api/v1/alerts/${alert.notification}/seen/`);
  }

  async function catchUp() {
    const response = await fetch("/api/v1/alerts/?state=sent&page_size=20", { credentials: "same-origin" });
    if (!response.ok) return;
    const page = await response.json();
    (page.results || []).reverse().forEach((row) => show({
      activation: row.activation, notification: row.id, title: row.title,
      message: row.message, is_exercise: row.is_exercise,
    }));
  }

  document.addEventListener("ctpn:alert", (event) => show(event.detail));

  function ownSocket() {
    let delay = 1000;
    function connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const socket = new WebSocket(`${scheme}://${location.host}/ws/me/`);
      socket.onmessage = (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "hello") {
          delay = 1000;
          window.ctpnAlerts.listening = true;
          catchUp();
        }
        if (message.type === "alert") {
          document.dispatchEvent(new CustomEvent("ctpn:alert", { detail: message.alert }));
        }
      };
      socket.onclose = (event) => {
        window.ctpnAlerts.listening = false;
        if (event.code === 4401) return; // signed out: nothing to listen for
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    connect();
  }

  function start() {
    if (document.querySelector("[data-live-socket]")) catchUp();
    else ownSocket();
  }
  window.ctpnAlerts = { show, listening: false };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
