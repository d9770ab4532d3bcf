// A live conversation: answers stream in over the conversation's websocket, for everyone
// watching. The server sends, per answer being written, a snapshot (text up to seq) and then
// deltas with higher seq; a rewind (a retried job) replaces the text. On reconnect it sends
// fresh snapshots, so a dropped socket or a reload resumes without gap or repeat.
(function () {
  "use strict";

  var root = document.getElementById("chat");
  if (!root) return;

  var conversationId = root.getAttribute("data-conversation");
  var canPost = root.getAttribute("data-can-post") === "true";
  var messageUrl = root.getAttribute("data-message-url");
  var pathsUrl = root.getAttribute("data-paths-url");
  var list = document.getElementById("chat-messages");
  var empty = document.getElementById("chat-empty");
  var liveState = document.getElementById("live-state");
  var composer = document.getElementById("composer");
  var textarea = document.getElementById("composer-text");
  var sendButton = document.getElementById("send-button");
  var stopButton = document.getElementById("stop-button");
  var suggestions = document.getElementById("path-suggestions");
  var toast = window.qwebToast || function () {};
  var presence = window.qwebPresence(document.getElementById("presence"));

  // message id -> {attempt, seq, text, finished}
  var streams = {};
  var socket = null;
  var retryDelay = 500;
  var lastPosted = "";

  function setLive(state, text) {
    if (!liveState) return;
    liveState.setAttribute("data-state", state);
    liveState.textContent = text;
  }

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 160;
  }
  function keepBottom(wasNear) {
    if (wasNear) window.scrollTo(0, document.body.scrollHeight);
  }

  function messageElement(id) {
    return document.getElementById("m-" + id);
  }

  function pendingAnswer() {
    return list.querySelector('.msg-assistant[data-state="pending"]');
  }

  function updateComposer() {
    var pending = pendingAnswer();
    if (stopButton) stopButton.hidden = !pending;
    if (sendButton) sendButton.disabled = !!pending || !socket || socket.readyState !== 1;
  }

  // ------------------------------------------------------------------ rendering

  var renderQueued = {};
  function renderStream(id) {
    if (renderQueued[id]) return;
    renderQueued[id] = true;
    window.requestAnimationFrame(function () {
      renderQueued[id] = false;
      var stream = streams[id];
      var el = messageElement(id);
      if (!stream || !el || stream.finished) return;
      var body = el.querySelector(".md-body");
      var wasNear = nearBottom();
      if (stream.text) {
        body.innerHTML = window.qwebMarkdown ? window.qwebMarkdown.render(stream.text) : "";
        if (!window.qwebMarkdown) body.textContent = stream.text;
        body.setAttribute("data-seq", stream.seq);
      }
      keepBottom(wasNear);
    });
  }

  function insertMessage(id, afterFetch) {
    if (messageElement(id)) { if (afterFetch) afterFetch(); return; }
    // A placeholder keeps the order while the server renders the message.
    var placeholder = document.createElement("article");
    placeholder.id = "m-" + id;
    placeholder.className = "msg msg-loading";
    placeholder.setAttribute("data-message-id", id);
    placeholder.innerHTML = '<div class="md-body"></div>';
    var wasNear = nearBottom();
    list.insertBefore(placeholder, empty);
    if (empty) empty.hidden = true;
    keepBottom(wasNear);
    fetch(messageUrl.replace(/0\/$/, id + "/"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        var current = messageElement(id);
        if (!fresh || !current) return;
        current.replaceWith(fresh);
        if (window.qwebMarkdown) window.qwebMarkdown.enhance(fresh);
        if (streams[id] && !streams[id].finished) renderStream(id);
        updateComposer();
        if (afterFetch) afterFetch();
      })
      .catch(function () { toast("Could not load a message; reload the page.", "error"); });
  }

  function finishMessage(event) {
    var id = event.message_id;
    var stream = streams[id] || (streams[id] = { attempt: 0, seq: 0, text: "" });
    stream.finished = true;
    // Re-fetch the whole message: the server's rendering, the state, the token counts.
    var el = messageElement(id);
    if (el) el.setAttribute("data-state", event.state);
    var replace = function () {
      fetch(messageUrl.replace(/0\/$/, id + "/"), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(); })
        .then(function (html) {
          var holder = document.createElement("div");
          holder.innerHTML = html.trim();
          var fresh = holder.firstElementChild;
          var current = messageElement(id);
          if (fresh && current) {
            var open = current.querySelector("details.ctx[open]");
            current.replaceWith(fresh);
            if (open) { var ctx = fresh.querySelector("details.ctx"); if (ctx) ctx.open = true; }
            if (window.qwebMarkdown) window.qwebMarkdown.enhance(fresh);
          }
          updateComposer();
        })
        .catch(function () { updateComposer(); });
    };
    replace();
    if (event.state === "failed" && event.error) toast("The answer failed: " + event.error, "error");
    updateComposer();
  }

  // ------------------------------------------------------------------ events

  var handlers = {
    "conversation.ready": function (event) {
      canPost = event.can_post;
      setLive("live", "live");
      presence.reset();
      send({ type: "presence" });
      // Catch up on what happened while this page was not connected: messages it lacks,
      // and answers it shows as being written that have ended since.
      event.recent.forEach(function (id) { if (!messageElement(id)) insertMessage(id); });
      list.querySelectorAll('.msg[data-state="pending"]').forEach(function (el) {
        var id = Number(el.getAttribute("data-message-id"));
        if (event.pending.indexOf(id) < 0) finishMessage({ message_id: id, state: "done" });
      });
      updateComposer();
    },
    "access.changed": function (event) {
      // The role changed but still lets this page stay open: posting may have changed.
      if (canPost !== event.can_post) toast(event.can_post ? "You can ask questions here now." : "Your role no longer lets you ask questions here.", "info");
      canPost = event.can_post;
      updateComposer();
    },
    "message.created": function (event) {
      if (event.role === "assistant") {
        streams[event.message_id] = streams[event.message_id] || { attempt: 0, seq: 0, text: "" };
      }
      insertMessage(event.message_id);
      if (event.role === "user" && composer && textarea.value.trim() === lastPosted) {
        textarea.value = "";
        lastPosted = "";
      }
      updateComposer();
    },
    "job.snapshot": function (event) {
      var id = event.message_id;
      streams[id] = { attempt: event.attempt, seq: event.seq, text: event.text, finished: false };
      if (!messageElement(id)) insertMessage(id);
      renderStream(id);
    },
    "job.rewind": function (event) {
      var stream = streams[event.message_id] || (streams[event.message_id] = {});
      stream.attempt = event.attempt;
      stream.seq = event.seq;
      stream.text = event.text;
      renderStream(event.message_id);
    },
    "job.delta": function (event) {
      var stream = streams[event.message_id];
      if (!stream || event.attempt !== stream.attempt || event.seq !== stream.seq + 1) {
        // The server only forwards the next delta; anything else means this page lost
        // track: reconnecting brings a fresh snapshot.
        if (stream && event.seq <= stream.seq && event.attempt === stream.attempt) return;
        reconnect();
        return;
      }
      stream.text += event.text;
      stream.seq = event.seq;
      renderStream(event.message_id);
    },
    "job.finished": function () {},
    "message.finished": finishMessage,
    "conversation.renamed": function (event) {
      var title = document.getElementById("conversation-title");
      if (title) title.textContent = event.title;
      document.title = event.title + " · qweb";
    },
    "conversation.pins_changed": function (event) {
      var chips = document.getElementById("pin-chips");
      if (!chips) return;
      chips.textContent = "";
      event.pinned.forEach(function (path) {
        var chip = document.createElement("span");
        chip.className = "chip";
        chip.setAttribute("data-pin", path);
        chip.textContent = path;
        chips.append(chip);
      });
    },
    "conversation.deleted": function () {
      toast("This conversation was deleted.", "error");
      setTimeout(function () { location.href = root.getAttribute("data-list-url"); }, 1200);
    },
    "error": function (event) {
      toast(event.message, "error");
      if (lastPosted && textarea && !textarea.value) textarea.value = lastPosted;
      lastPosted = "";
      updateComposer();
    },
    "pong": function () {}
  };

  // ------------------------------------------------------------------ socket

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/conversations/" + conversationId + "/");
    setLive("connecting", "connecting…");
    socket.onopen = function () { retryDelay = 500; };
    socket.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      var handler = handlers[event.type];
      if (handler) handler(event);
      else presence.handle(event);
    };
    socket.onclose = function (event) {
      updateComposer();
      if (event.code === 4403 || event.code === 4401) {
        setLive("closed", "no access");
        toast("You no longer have access to this conversation.", "error");
        return;
      }
      if (event.code === 4404) { setLive("closed", "deleted"); return; }
      setLive("offline", "reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  function reconnect() {
    if (socket && socket.readyState <= 1) socket.close(4000);
  }

  function send(event) {
    if (!socket || socket.readyState !== 1) {
      toast("Not connected; trying again…", "error");
      return false;
    }
    socket.send(JSON.stringify(event));
    return true;
  }

  // ------------------------------------------------------------------ composer

  function post() {
    if (!canPost || !textarea) return;
    var text = textarea.value.trim();
    if (!text) return;
    if (pendingAnswer()) { toast("Wait for the answer or stop it first.", "info"); return; }
    lastPosted = text;
    if (send({ type: "post", text: text })) sendButton.disabled = true;
  }

  function stop() {
    var pending = pendingAnswer();
    if (pending) send({ type: "stop", message_id: Number(pending.getAttribute("data-message-id")) });
  }

  if (composer) {
    composer.addEventListener("submit", function (event) { event.preventDefault(); post(); });
    textarea.addEventListener("keydown", function (event) {
      if (suggestionKeys(event)) return;
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        post();
      }
    });
    if (stopButton) stopButton.addEventListener("click", stop);
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && pendingAnswer() && canPost) {
      if (suggestions && !suggestions.hidden) return;
      stop();
    }
  });
  document.addEventListener("click", function (event) {
    var stopTarget = event.target.closest("[data-stop]");
    if (stopTarget) {
      event.preventDefault();
      send({ type: "stop", message_id: Number(stopTarget.getAttribute("data-stop")) });
    }
  });
  // "Pin checked files and ask again" in an answer's context table.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-ask-again]");
    if (!form) return;
    event.preventDefault();
    var pins = Array.prototype.map.call(form.querySelectorAll("input[name=pin]:checked"), function (input) { return input.value; });
    if (pendingAnswer()) { toast("Wait for the answer or stop it first.", "info"); return; }
    if (send({ type: "pins", pinned: pins })) {
      send({ type: "ask_again", message_id: Number(form.getAttribute("data-ask-again")) });
    }
  });

  // ------------------------------------------------------------------ @path autocomplete

  var active = -1;
  var mention = null;
  var lookup = null;

  function currentMention() {
    var caret = textarea.selectionStart;
    var before = textarea.value.slice(0, caret);
    var match = /(^|\s)@([\w.\/-]*)$/.exec(before);
    return match ? { start: caret - match[2].length, end: caret, query: match[2] } : null;
  }

  function closeSuggestions() {
    suggestions.hidden = true;
    suggestions.textContent = "";
    active = -1;
  }

  function showSuggestions(paths) {
    suggestions.textContent = "";
    paths.forEach(function (path, index) {
      var item = document.createElement("li");
      item.setAttribute("role", "option");
      item.textContent = path;
      item.addEventListener("mousedown", function (event) { event.preventDefault(); choose(index); });
      suggestions.append(item);
    });
    active = paths.length ? 0 : -1;
    highlight();
    suggestions.hidden = !paths.length;
  }

  function highlight() {
    Array.prototype.forEach.call(suggestions.children, function (item, index) {
      item.setAttribute("aria-selected", index === active ? "true" : "false");
    });
  }

  function choose(index) {
    var item = suggestions.children[index];
    if (!item || !mention) return;
    var value = textarea.value;
    textarea.value = value.slice(0, mention.start) + item.textContent + " " + value.slice(mention.end);
    var caret = mention.start + item.textContent.length + 1;
    textarea.setSelectionRange(caret, caret);
    closeSuggestions();
    textarea.focus();
  }

  function suggestionKeys(event) {
    if (!suggestions || suggestions.hidden) return false;
    var count = suggestions.children.length;
    if (event.key === "ArrowDown") { active = (active + 1) % count; highlight(); }
    else if (event.key === "ArrowUp") { active = (active - 1 + count) % count; highlight(); }
    else if (event.key === "Enter" || event.key === "Tab") { choose(active); }
    else if (event.key === "Escape") { closeSuggestions(); }
    else return false;
    event.preventDefault();
    return true;
  }

  if (textarea && suggestions) {
    textarea.addEventListener("input", function () {
      mention = currentMention();
      if (!mention) { closeSuggestions(); return; }
      var query = mention.query;
      clearTimeout(lookup);
      lookup = setTimeout(function () {
        fetch(pathsUrl + "?q=" + encodeURIComponent(query), { credentials: "same-origin" })
          .then(function (response) { return response.json(); })
          .then(function (data) {
            var now = currentMention();
            if (now && now.query === query) showSuggestions(data.paths || []);
          })
          .catch(closeSuggestions);
      }, 80);
    });
    textarea.addEventListener("blur", function () { setTimeout(closeSuggestions, 150); });
  }

  // Read-only view of the streams for debugging and the browser tests.
  window.qwebChat = { streams: streams };
  if (window.qwebMarkdown) window.qwebMarkdown.enhance(list);
  connect();
  updateComposer();
})();
