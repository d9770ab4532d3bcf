// A live conversation: answers stream in over the conversation's websocket, for everyone
// watching. The server sends, per answer being written, a snapshot (text up to seq) and then
// deltas with higher seq; a rewind (a retried job) replaces the text. On reconnect it sends
// fresh snapshots, so a dropped socket or a reload resumes without gap or repeat.
//
// Questions and answers have versions (edits, regenerations): the page shows one path
// through them, rendered by the server (the thread fragment, `?leaf=` a message on it). A
// new message whose parent is the last one shown is appended; one whose parent is shown
// higher up is a new version, and the page switches to it; any other is on a path this
// page does not show. The page follows the stream at the bottom unless the reader scrolls up.
(function () {
  "use strict";

  var root = document.getElementById("chat");
  if (!root) return;

  var conversationId = root.getAttribute("data-conversation");
  var canPost = root.getAttribute("data-can-post") === "true";
  var messageUrl = root.getAttribute("data-message-url");
  var threadUrl = root.getAttribute("data-thread-url");
  var pinsUrl = root.getAttribute("data-pins-url");
  var pathsUrl = root.getAttribute("data-paths-url");
  var list = document.getElementById("chat-thread");
  var jumpButton = document.getElementById("jump-latest");
  var usageToday = document.getElementById("usage-today");
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
  var readyOnce = false;
  // The message a thread fetch in flight ends at: its answer's created event needs nothing.
  var loadingLeaf = null;

  function setLive(state, text) {
    if (!liveState) return;
    liveState.setAttribute("data-state", state);
    liveState.textContent = text;
  }

  // ------------------------------------------------------------------ following the stream

  // True while the reader is at the bottom: new text scrolls into view. Scrolling up stops
  // it and offers a "Latest" button; that, or scrolling back to the bottom, starts it again.
  var following = true;
  var lastScrollY = window.scrollY;

  // "The bottom" is the end of the messages, just above the composer (which sticks to the
  // foot of the screen), not the end of the document: on a phone the side panels follow.
  var messagesEnd = document.getElementById("chat-messages");
  function latestGap() {
    var foot = composer ? composer.offsetHeight : 0;
    return messagesEnd.getBoundingClientRect().bottom - (window.innerHeight - foot);
  }
  function nearBottom() {
    return latestGap() <= 80;
  }
  function toBottom() {
    var gap = latestGap();
    if (gap > 0) window.scrollBy(0, gap);
  }
  function follow() {
    if (following) toBottom();
    else if (jumpButton) jumpButton.hidden = false;
  }
  window.addEventListener("scroll", function () {
    var y = window.scrollY;
    var near = nearBottom();
    if (near) following = true;
    else if (y < lastScrollY - 4) following = false;
    if (jumpButton) jumpButton.hidden = near || following;
    lastScrollY = y;
  }, { passive: true });
  if (jumpButton) {
    jumpButton.addEventListener("click", function () {
      following = true;
      jumpButton.hidden = true;
      toBottom();
    });
  }

  function formatNumber(n) {
    return Number(n).toLocaleString("en-US");
  }

  function messageElement(id) {
    return document.getElementById("m-" + id);
  }

  function pendingAnswer() {
    return list.querySelector('.msg-assistant[data-state="pending"]');
  }

  function shownIds() {
    return Array.prototype.map.call(list.querySelectorAll(":scope > .msg"), function (el) {
      return Number(el.getAttribute("data-message-id"));
    });
  }

  // The answer a new question follows: the last one on this page (none on an empty page).
  function lastAnswerId() {
    var answers = list.querySelectorAll(":scope > .msg-assistant");
    return answers.length ? Number(answers[answers.length - 1].getAttribute("data-message-id")) : null;
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
      if (stream.text) {
        body.innerHTML = window.qwebMarkdown ? window.qwebMarkdown.render(stream.text) : "";
        if (!window.qwebMarkdown) body.textContent = stream.text;
        body.setAttribute("data-seq", stream.seq);
      }
      follow();
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
    list.append(placeholder);
    if (empty) empty.hidden = true;
    follow();
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
        follow();
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
    if (!el) return;  // on a path this page does not show
    el.setAttribute("data-state", event.state);
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
            follow();
          }
          updateComposer();
        })
        .catch(function () { updateComposer(); });
    };
    replace();
    if (event.state === "failed" && event.error) toast("The answer failed: " + event.error, "error");
    updateComposer();
  }

  // Show the path through message ``leaf`` (and the newest of what follows it), as the
  // server renders it. ``anchor`` (a message id) stays where it is on the screen: the
  // version the reader just switched to does not jump away under the pointer.
  function loadThread(leaf, anchor) {
    var url = threadUrl + (leaf ? "?leaf=" + leaf : "");
    var before = anchor && messageElement(anchor) ? messageElement(anchor).getBoundingClientRect().top : null;
    loadingLeaf = leaf;
    return fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        if (loadingLeaf === leaf) loadingLeaf = null;
        var open = {};
        list.querySelectorAll("details.ctx[open]").forEach(function (d) { open[d.getAttribute("data-testid")] = true; });
        list.innerHTML = html;
        list.querySelectorAll("details.ctx").forEach(function (d) { if (open[d.getAttribute("data-testid")]) d.open = true; });
        if (empty) empty.hidden = !!list.querySelector(".msg");
        if (window.qwebMarkdown) window.qwebMarkdown.enhance(list);
        list.querySelectorAll('.msg[data-state="pending"]').forEach(function (el) {
          var id = Number(el.getAttribute("data-message-id"));
          if (streams[id] && !streams[id].finished) renderStream(id);
        });
        var target = leaf && messageElement(leaf);
        if (before !== null && target) window.scrollBy(0, target.getBoundingClientRect().top - before);
        else follow();
        updateComposer();
      })
      .catch(function () {
        if (loadingLeaf === leaf) loadingLeaf = null;
        toast("Could not load the conversation; reload the page.", "error");
      });
  }

  // A message someone just created: the next one on this page, a new version of one shown
  // (switch to it), or on another path (leave the page as it is).
  function placeMessage(event) {
    var id = event.message_id;
    if (messageElement(id)) return;
    var shown = shownIds();
    var parent = event.parent_id;
    if (parent !== null && parent === loadingLeaf) return;  // the fetch in flight brings it
    if ((parent === null && !shown.length) || (parent !== null && parent === shown[shown.length - 1])) {
      insertMessage(id);
    } else if (parent === null || shown.indexOf(parent) >= 0) {
      following = true;
      loadThread(id);
    } else if (event.role === "user") {
      toast("A question was asked on another version of this conversation.", "info");
    }
  }

  function refreshPins() {
    var panel = document.getElementById("pins-panel");
    if (!panel || !pinsUrl) return;
    fetch(pinsUrl, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        var current = document.getElementById("pins-panel");
        if (fresh && current) current.replaceWith(fresh);
      })
      .catch(function () {});
  }

  // A turn refused because of its pins says so in the pinned panel too, until pins change.
  function showPinRefusal(text) {
    var panel = document.getElementById("pins-panel");
    if (!panel) return;
    var note = panel.querySelector(".pin-refusal");
    if (!note) {
      note = document.createElement("p");
      note.className = "pin-warning pin-refusal";
      note.setAttribute("role", "alert");
      panel.prepend(note);
    }
    note.textContent = text;
  }

  // ------------------------------------------------------------------ events

  var handlers = {
    "conversation.ready": function (event) {
      canPost = event.can_post;
      setLive("live", "live");
      presence.reset();
      send({ type: "presence" });
      root.setAttribute("data-can-post", canPost ? "true" : "false");
      // Catch up on what happened while this page was not connected (or between its
      // rendering and this socket joining): the server renders this page's path again,
      // down to its newest message. On a first connection only when something is missing.
      var shown = shownIds();
      var newest = shown.length ? Math.max.apply(null, shown) : 0;
      var stale = Array.prototype.some.call(list.querySelectorAll('.msg[data-state="pending"]'), function (el) {
        return event.pending.indexOf(Number(el.getAttribute("data-message-id"))) < 0;
      });
      var missing = event.recent.some(function (id) { return id > newest; });
      if (readyOnce || stale || missing) loadThread(shown.length ? shown[shown.length - 1] : null);
      readyOnce = true;
      updateComposer();
    },
    "access.changed": function (event) {
      // The role changed but still lets this page stay open: posting may have changed.
      if (canPost !== event.can_post) toast(event.can_post ? "You can ask questions here now." : "Your role no longer lets you ask questions here.", "info");
      canPost = event.can_post;
      root.setAttribute("data-can-post", canPost ? "true" : "false");
      updateComposer();
    },
    "message.created": function (event) {
      if (event.role === "assistant") {
        streams[event.message_id] = streams[event.message_id] || { attempt: 0, seq: 0, text: "" };
      }
      placeMessage(event);
      if (event.role === "user" && composer && textarea.value.trim() === lastPosted) {
        textarea.value = "";
        lastPosted = "";
      }
      updateComposer();
    },
    "job.snapshot": function (event) {
      var id = event.message_id;
      // An answer on a path this page does not show is followed but not drawn.
      streams[id] = { attempt: event.attempt, seq: event.seq, text: event.text, finished: false };
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
    "usage.today": function (event) {
      if (usageToday) usageToday.textContent = formatNumber(event.tokens);
    },
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
      refreshPins();
    },
    "conversation.deleted": function () {
      toast("This conversation was deleted.", "error");
      setTimeout(function () { location.href = root.getAttribute("data-list-url"); }, 1200);
    },
    "error": function (event) {
      toast(event.message, "error");
      if (/^(The pinned files need|Pinned files not in commit)/.test(event.message || "")) showPinRefusal(event.message);
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
    following = true;
    if (send({ type: "post", text: text, parent_id: lastAnswerId() })) sendButton.disabled = true;
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
  function editForm(id) {
    return list.querySelector('form[data-edit="' + id + '"]');
  }
  function closeEdit(form) {
    var el = form.closest(".msg");
    form.hidden = true;
    el.classList.remove("editing");
  }

  document.addEventListener("click", function (event) {
    var stopTarget = event.target.closest("[data-stop]");
    if (stopTarget) {
      event.preventDefault();
      send({ type: "stop", message_id: Number(stopTarget.getAttribute("data-stop")) });
      return;
    }
    var versionTarget = event.target.closest("[data-show-version]");
    if (versionTarget) {
      event.preventDefault();
      var leaf = Number(versionTarget.getAttribute("data-show-version"));
      following = false;
      loadThread(leaf, Number(versionTarget.closest(".msg").getAttribute("data-message-id")));
      return;
    }
    var editTarget = event.target.closest("[data-edit-open]");
    if (editTarget) {
      var form = editForm(editTarget.getAttribute("data-edit-open"));
      if (!form) return;
      form.hidden = false;
      form.closest(".msg").classList.add("editing");
      var area = form.querySelector("textarea");
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
      return;
    }
    var cancelTarget = event.target.closest("[data-edit-cancel]");
    if (cancelTarget) closeEdit(cancelTarget.closest("form"));
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-pin-regenerate], form[data-regenerate], form[data-edit]");
    if (!form) return;
    event.preventDefault();
    if (pendingAnswer()) { toast("Wait for the answer or stop it first.", "info"); return; }
    following = true;
    if (form.hasAttribute("data-edit")) {
      var text = form.querySelector("textarea").value.trim();
      if (!text) { toast("Write a question first.", "info"); return; }
      if (send({ type: "edit", message_id: Number(form.getAttribute("data-edit")), text: text })) closeEdit(form);
    } else if (form.hasAttribute("data-regenerate")) {
      send({ type: "regenerate", message_id: Number(form.getAttribute("data-regenerate")) });
    } else {
      // "Pin checked files and regenerate" in an answer's context table.
      var pins = Array.prototype.map.call(form.querySelectorAll("input[name=pin]:checked"), function (input) { return input.value; });
      if (send({ type: "pins", pinned: pins })) {
        send({ type: "regenerate", message_id: Number(form.getAttribute("data-pin-regenerate")) });
      }
    }
  });
  document.addEventListener("keydown", function (event) {
    var form = event.target.closest && event.target.closest("form[data-edit]");
    if (!form) return;
    if (event.key === "Escape") { event.stopPropagation(); closeEdit(form); }
    else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); form.requestSubmit(); }
  }, true);

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
  window.qwebChat = { streams: streams, isFollowing: function () { return following; } };
  if (window.qwebMarkdown) window.qwebMarkdown.enhance(list);
  // The page opens at the latest message.
  toBottom();
  connect();
  updateComposer();
})();
