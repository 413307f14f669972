/*
 * Live updates of an incident dashboard (and wall screen).
 *
 * One WebSocket per open page to /ws/incidents/<id>/. Every change to an incident is an event with
 * a gap-free sequence number. The page was rendered with the events up to data-last-seq applied;
 * from there this client applies each event exactly once, in order:
 *   - seq <= last: already applied, ignored;
 *   - seq == last + 1: applied;
 *   - seq > last + 1 (a gap), a hello announcing a later seq, a reconnect, or the tab becoming
 *     visible again: the missing events are fetched from the events API (?after=<last>, following
 *     pagination) and applied in order while live events are buffered; then live resumes.
 * "Applying" an event refreshes the panels its kind affects (htmx) and appends one line to the
 * live activity feed (an element with data-seq per event).
 *
 * Configuration comes from data- attributes of #live: no inline script, so a content security
 * policy without 'unsafe-inline' can be applied.
 */
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) return;

  var incidentId = root.dataset.incidentId;
  var wsPath = root.dataset.wsPath;
  var eventsUrl = root.dataset.eventsUrl;
  var timeZone = root.dataset.timeZone || undefined;
  var statusEl = document.getElementById("live-status");
  var feedEl = root.querySelector("[data-feed]");
  var presenceEl = root.querySelector("[data-presence]");

  // Close codes after which retrying cannot help: not signed in, or no access to the incident.
  var FINAL_CLOSE_CODES = { 4401: "You are signed out. Reload the page to sign in again.",
                            4404: "You no longer have access to this incident." };
  var BACKOFF_FIRST_MS = 500;
  var BACKOFF_MAX_MS = 15000;
  var PANEL_REFRESH_DELAY_MS = 40; // coalesces a burst of events into one refresh per panel
  var REPLAY_RETRY_MS = 2000;
  var FEED_MAX_LINES = 500;

  // Which panels each kind of event changes (by prefix of the kind).
  var PANELS_BY_KIND = [
    ["incident.", ["header", "agencies"]],
    ["methane.", ["methane"]],
    ["decision.", ["decisions"]],
    ["action.", ["actions"]],
    ["timeline.", ["timeline"]],
    ["lesson.", ["lessons"]],
    ["meeting.", ["meetings"]],
    ["statement.", ["public-line"]],
    ["brief.", ["public-line"]],
    ["exercise.", ["injects"]],
  ];

  var state = {
    last: parseInt(root.dataset.lastSeq || "0", 10) || 0,
    socket: null,
    attempts: 0,
    retryTimer: null,
    stopped: false,
    syncing: false,      // a replay from the API is running
    syncAgain: false,    // another reason to replay arrived while one was running
    syncTarget: 0,       // every event up to this seq is known to be committed
    buffer: {},          // live events received while replaying or beyond a gap, by seq
    pendingPanels: {},
    panelTimer: null,
  };
  // Exposed for tests and for other scripts of the page (read-only use).
  window.ctpnLive = { state: state };

  function setStatus(stateName, text) {
    if (!statusEl) return;
    statusEl.dataset.state = stateName;
    statusEl.textContent = text;
  }

  // --- applying events ---------------------------------------------------------------------------

  function panelsFor(kind) {
    for (var i = 0; i < PANELS_BY_KIND.length; i++) {
      if (kind.indexOf(PANELS_BY_KIND[i][0]) === 0) return PANELS_BY_KIND[i][1];
    }
    return [];
  }

  function allPanelNames() {
    var names = {};
    Array.prototype.forEach.call(root.querySelectorAll("[data-panel]"), function (panel) {
      names[panel.dataset.panel] = true;
    });
    return Object.keys(names);
  }

  function refreshPanelsSoon(names) {
    names.forEach(function (name) { state.pendingPanels[name] = true; });
    if (state.panelTimer) return;
    state.panelTimer = setTimeout(function () {
      var names = Object.keys(state.pendingPanels);
      state.pendingPanels = {};
      state.panelTimer = null;
      names.forEach(refreshPanel);
    }, PANEL_REFRESH_DELAY_MS);
  }

  // One refresh per panel at a time; a change arriving meanwhile asks for one more afterwards, so
  // the panel always ends showing the latest state. (htmx would drop a second request from the
  // same source element while one is in flight.)
  var refreshing = {};
  var refreshAgain = {};

  function refreshPanel(name) {
    if (state.stopped) return; // signed out or no access: the panels would not come back
    if (refreshing[name]) {
      refreshAgain[name] = true;
      return;
    }
    var panels = root.querySelectorAll('[data-panel="' + name + '"]');
    var pending = [];
    Array.prototype.forEach.call(panels, function (panel) {
      var url = panel.dataset.panelUrl;
      if (!url || !window.htmx) return;
      // Keep the reader's place: remember which <details> were open and restore them.
      var open = Array.prototype.map.call(panel.querySelectorAll("details[open]"), function (d) {
        return d.parentElement && d.parentElement.id;
      });
      var swapped = window.htmx.ajax("GET", url, { source: panel, target: panel, swap: "innerHTML" })
        .then(function () {
          open.forEach(function (id) {
            var item = id && document.getElementById(id);
            var details = item && item.querySelector("details");
            if (details) details.open = true;
          });
        });
      pending.push(swapped.catch(function () { return null; }));
    });
    if (pending.length === 0) return;
    refreshing[name] = true;
    Promise.all(pending).then(function () {
      refreshing[name] = false;
      if (refreshAgain[name]) {
        refreshAgain[name] = false;
        refreshPanel(name);
      }
    });
  }

  function clockTime(iso) {
    if (!iso) return "";
    try {
      return new Date(iso).toLocaleTimeString("en-GB", {
        timeZone: timeZone, hour: "2-digit", minute: "2-digit", second: "2-digit",
      });
    } catch (err) {
      return "";
    }
  }

  function describe(event) {
    var p = event.payload || {};
    switch (event.kind) {
      case "incident.opened": return "Incident opened";
      case "incident.transitioned":
        return "Status changed" + (p.from ? " from " + p.from : "") + " to " + (p.status || "?");
      case "methane.submitted": return "M/ETHANE version " + (p.version || "?") + " submitted";
      case "decision.recorded":
        return "Decision " + (p.label || "") + " recorded: " + (p.decision || "");
      case "decision.position_recorded":
        return (p.agency_name || "An agency") + (p.stance === "dissent" ? " dissents from " : " agrees with ") +
          (p.label || "a decision");
      case "action.created": return "Action added for " + (p.owner_agency_name || "?") + ": " + (p.title || "");
      case "action.updated":
        return "Action “" + (p.title || "") + "” is now " + (p.status || "?").replace("_", " ");
      case "timeline.added": return "Timeline: " + (p.text || "");
      case "debrief.created": return "Debrief “" + (p.title || "") + "” recorded";
      case "debrief.closed": return "Debrief “" + (p.title || "") + "” closed";
      case "debrief.observation_added": return "Observation added to a debrief";
      case "lesson.identified": return "Lesson " + (p.label || "") + " identified: " + (p.title || "");
      case "lesson.transitioned":
        return "Lesson " + (p.label || "") + " is now " + (p.status || "?").replace("_", " ");
      case "lesson.assigned": return "Lesson " + (p.label || "") + " assigned";
      case "lesson.updated": return "Lesson " + (p.label || "") + " updated";
      case "meeting.scheduled": return "Meeting scheduled: " + (p.title || "");
      case "meeting.started": return "Meeting started: " + (p.title || "");
      case "meeting.closed": return "Meeting closed: " + (p.title || "");
      case "meeting.updated": return "Meeting updated: " + (p.title || "");
      case "exercise.inject":
        return "EXERCISE inject " + (p.position || "?") + ": " + (p.title || "") +
          (p.text ? " — " + p.text : "");
      case "exercise.started": return "EXERCISE started";
      case "exercise.paused": return "EXERCISE paused";
      case "exercise.resumed": return "EXERCISE resumed";
      case "exercise.ended": return "EXERCISE ended";
      default: return p.summary || event.kind;
    }
  }

  function appendFeedLine(event) {
    if (!feedEl) return;
    var item = document.createElement("li");
    item.dataset.seq = String(event.seq);
    item.dataset.kind = event.kind;
    var time = document.createElement("time");
    if (event.created_at) time.setAttribute("datetime", event.created_at);
    time.textContent = clockTime(event.created_at);
    var text = document.createElement("span");
    var line = describe(event);
    text.textContent = " " + (line.length > 160 ? line.slice(0, 157) + "…" : line);
    item.appendChild(time);
    item.appendChild(text);
    if (event.marking) {
      var mark = document.createElement("span");
      mark.className = "tlp tlp-" + event.marking.toLowerCase().replace("+", "");
      mark.textContent = "TLP:" + event.marking;
      item.appendChild(document.createTextNode(" "));
      item.appendChild(mark);
    }
    feedEl.insertBefore(item, feedEl.firstChild);
    // A wall screen stays open for days: keep the feed to its most recent lines.
    while (feedEl.children.length > FEED_MAX_LINES) feedEl.removeChild(feedEl.lastChild);
    var empty = root.querySelector("[data-feed-empty]");
    if (empty) empty.hidden = true;
  }

  function apply(event) {
    state.last = event.seq;
    if (event.kind === "hidden") {
      // A change this user may not see: no feed line. It may be a marking raised on an item this
      // page still shows, so every panel is drawn again (through the access rule) to drop it.
      refreshPanelsSoon(allPanelNames());
      return;
    }
    appendFeedLine(event);
    refreshPanelsSoon(panelsFor(event.kind));
    document.dispatchEvent(new CustomEvent("ctpn:event", { detail: event }));
  }

  // Apply buffered live events that are now next in line; drop the ones already applied.
  function drainBuffer() {
    var progressed = true;
    while (progressed) {
      progressed = false;
      Object.keys(state.buffer).forEach(function (key) {
        var seq = parseInt(key, 10);
        if (seq <= state.last) {
          delete state.buffer[key];
        } else if (seq === state.last + 1) {
          var event = state.buffer[key];
          delete state.buffer[key];
          apply(event);
          progressed = true;
        }
      });
    }
    if (Object.keys(state.buffer).length > 0) {
      // Something beyond a gap is still waiting: the gap's events must come from the API.
      var lowest = Math.min.apply(null, Object.keys(state.buffer).map(Number));
      catchUp(lowest - 1);
    }
  }

  function receiveEvent(event) {
    if (typeof event.seq !== "number" || event.seq <= state.last) return;
    if (state.syncing || event.seq > state.last + 1) {
      state.buffer[event.seq] = event;
      if (!state.syncing) catchUp(event.seq - 1);
      return;
    }
    apply(event);
    drainBuffer();
  }

  // --- replay from the events API ----------------------------------------------------------------

  function fetchPage(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          var failure = new Error("events answered " + response.status);
          failure.status = response.status;
          throw failure;
        }
        return response.json();
      });
  }

  // Replay everything after the last applied event. ``target``: a seq known to be committed
  // (the events up to it exist, even if some are not visible to this user and never come back).
  function catchUp(target) {
    if (state.stopped) return;
    if (target > state.syncTarget) state.syncTarget = target;
    if (state.syncing) {
      state.syncAgain = true;
      return;
    }
    state.syncing = true;
    state.syncAgain = false;
    var separator = eventsUrl.indexOf("?") === -1 ? "?" : "&";
    var target_at_start = state.syncTarget;

    function step(url) {
      return fetchPage(url).then(function (body) {
        (body.results || []).forEach(function (event) {
          if (event.seq > state.last) apply(event);
        });
        if (body.next) return step(body.next);
        return null;
      });
    }

    step(eventsUrl + separator + "after=" + state.last)
      .then(function () {
        // The API has answered after the target was committed: numbers up to it that did not
        // come back are not visible to this user, so they are passed over.
        if (target_at_start > state.last) state.last = target_at_start;
        state.syncing = false;
        drainBuffer();
        if (state.syncAgain) catchUp(0);
      })
      .catch(function (failure) {
        state.syncing = false;
        var status = failure && failure.status;
        if (status === 401 || status === 403 || status === 404) {
          // Signed out, or the incident is no longer visible: asking again cannot help.
          stop(status === 404 ? 4404 : 4401);
          return;
        }
        if (state.stopped) return;
        // Try again shortly; live events keep buffering meanwhile.
        setTimeout(function () { catchUp(0); }, REPLAY_RETRY_MS);
      });
  }

  // --- presence ----------------------------------------------------------------------------------

  function showPresence(present) {
    if (!presenceEl) return;
    presenceEl.textContent = "";
    if (!present || present.length === 0) {
      var none = document.createElement("li");
      none.className = "muted";
      none.textContent = "Nobody else is connected.";
      presenceEl.appendChild(none);
      return;
    }
    present.slice().sort(function (a, b) {
      return (a.agency || "").localeCompare(b.agency || "") || (a.name || "").localeCompare(b.name || "");
    }).forEach(function (person) {
      var item = document.createElement("li");
      item.dataset.userId = String(person.user_id);
      item.textContent = (person.name || "Someone") + (person.agency ? " (" + person.agency + ")" : "");
      presenceEl.appendChild(item);
    });
  }

  // --- the socket --------------------------------------------------------------------------------

  function handleMessage(raw) {
    var message;
    try {
      message = JSON.parse(raw);
    } catch (err) {
      return;
    }
    if (!message || typeof message !== "object") return;
    switch (message.type) {
      case "hello":
        if (typeof message.last_seq === "number" && message.last_seq > state.last) {
          catchUp(message.last_seq);
        }
        break;
      case "event":
        if (message.event) receiveEvent(message.event);
        break;
      case "presence":
        showPresence(message.present);
        break;
      case "alert":
        // Rendering alerts belongs to the alerting script of the page.
        document.dispatchEvent(new CustomEvent("ctpn:alert", { detail: message.alert }));
        break;
      default:
        break;
    }
  }

  function connect() {
    if (state.stopped) return;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + wsPath);
    state.socket = socket;
    var reconnecting = state.attempts > 0;

    socket.addEventListener("open", function () {
      state.attempts = 0;
      setStatus("live", "Live: changes appear as they happen.");
      // After a reconnect anything may have been missed; the hello would say so too, but the
      // replay costs one request and does not depend on the server sending one. Panels are
      // fetched again as well: a refresh attempted while the server was away has failed.
      if (reconnecting) {
        catchUp(0);
        refreshPanelsSoon(allPanelNames());
      }
    });
    socket.addEventListener("message", function (msg) { handleMessage(msg.data); });
    socket.addEventListener("close", function (closed) {
      if (state.socket !== socket) return;
      state.socket = null;
      if (FINAL_CLOSE_CODES[closed.code]) {
        stop(closed.code);
        return;
      }
      scheduleReconnect();
    });
  }

  function stop(code) {
    state.stopped = true;
    if (state.retryTimer) {
      clearTimeout(state.retryTimer);
      state.retryTimer = null;
    }
    if (state.socket) {
      var socket = state.socket;
      state.socket = null;
      socket.close();
    }
    setStatus("stopped", "Live updates stopped. " + FINAL_CLOSE_CODES[code]);
  }

  function scheduleReconnect() {
    if (state.stopped || state.retryTimer) return;
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * Math.pow(2, state.attempts));
    // Full jitter: many screens that lost the same server must not all return at one instant.
    var delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    state.attempts += 1;
    setStatus("reconnecting", "Reconnecting… (live updates paused; nothing will be missed)");
    state.retryTimer = setTimeout(function () {
      state.retryTimer = null;
      connect();
    }, delay);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || state.stopped) return;
    catchUp(0);
    // A sleeping laptop may have lost the socket without a close event reaching us yet.
    if (!state.socket && state.retryTimer) {
      clearTimeout(state.retryTimer);
      state.retryTimer = null;
      connect();
    }
  });
  window.addEventListener("online", function () {
    if (!state.socket && state.retryTimer && !state.stopped) {
      clearTimeout(state.retryTimer);
      state.retryTimer = null;
      connect();
    }
  });

  if (incidentId && wsPath && "WebSocket" in window) {
    connect();
  } else {
    setStatus("stopped", "Live updates are not available in this browser; reload to see changes.");
  }
})();
