// A refactor session's page: the proposal streams in while the model writes it; then the
// review — diffs loaded as files come into view, accept/reject per hunk or file, comments
// on lines in threads (reply, resolve, reopen), suggested changes to a hunk, all shared
// live with everyone on the page. Keys: j/k hunks, n/p unresolved threads, ]/[ files,
// a/r accept/reject, c comment, Esc stop a proposal being written. The thread and
// suggestion forms are plain posts; connected, the page sends them over the socket. Every verdict shows who
// made it and when; a verdict is sent with the one the page showed ("expected"), and one
// refused as stale comes back with the stored verdict, which the page then shows.
(function () {
  "use strict";

  var root = document.getElementById("refactor");
  if (!root) return;

  var sessionId = root.getAttribute("data-session");
  var changesetId = Number(root.getAttribute("data-changeset") || 0);
  var canReview = root.getAttribute("data-can-review") === "true";
  var reviewsUrl = root.getAttribute("data-reviews-url");
  // The proposal's verdicts as far as this page knows them ("accept all" sends it).
  var decisionsVersion = Number(root.getAttribute("data-decisions-version") || 0);
  var latest = root.getAttribute("data-latest") === "true";
  var liveState = document.getElementById("live-state");
  var toast = window.qwebToast || function () {};
  var presence = window.qwebPresence(document.getElementById("presence"));
  var socket = null;
  var retryDelay = 500;
  var stream = { attempt: 0, seq: 0, text: "" };
  var view = "unified";
  var currentHunk = null;

  function setLive(state, text) {
    if (!liveState) return;
    liveState.setAttribute("data-state", state);
    liveState.textContent = text;
  }

  // ------------------------------------------------------------------ times

  function relativeTime(iso) {
    var seconds = (Date.now() - Date.parse(iso)) / 1000;
    if (!(seconds >= 0) || seconds < 45) return "just now";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return new Date(iso).toLocaleDateString();
  }

  function timeElement(iso) {
    var time = document.createElement("time");
    time.setAttribute("datetime", iso);
    time.setAttribute("data-relative", "");
    time.title = new Date(iso).toLocaleString();
    time.textContent = relativeTime(iso);
    return time;
  }

  function refreshTimes() {
    document.querySelectorAll("#refactor time[data-relative]").forEach(function (time) {
      time.textContent = relativeTime(time.getAttribute("datetime"));
    });
  }
  setInterval(refreshTimes, 30000);
  refreshTimes();

  // ------------------------------------------------------------------ proposal stream

  var renderQueued = false;
  function renderStream() {
    if (renderQueued) return;
    renderQueued = true;
    window.requestAnimationFrame(function () {
      renderQueued = false;
      var box = document.getElementById("proposal-stream");
      if (!box || !stream.text) return;
      box.innerHTML = window.qwebMarkdown ? window.qwebMarkdown.render(stream.text) : "";
      if (!window.qwebMarkdown) box.textContent = stream.text;
      box.scrollTop = box.scrollHeight;
    });
  }

  // ------------------------------------------------------------------ lazy diffs

  function fileSection(path) {
    var found = null;
    document.querySelectorAll(".file-diff").forEach(function (section) {
      if (section.getAttribute("data-path") === path) found = section;
    });
    return found;
  }

  function loadFile(section, query) {
    var body = section.querySelector(".file-body");
    var url = body.getAttribute("data-src") + (query ? "&" + query : "&view=" + view);
    body.setAttribute("data-loaded", "loading");
    return fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        body.innerHTML = html;
        body.setAttribute("data-loaded", "yes");
        body.querySelectorAll(".hunk-decisions li").forEach(function (item) {
          var hunk = body.querySelector('.hunk[data-hunk="' + item.getAttribute("data-hunk") + '"]');
          if (hunk) setAttribution(hunk, item.getAttribute("data-by"), item.getAttribute("data-at"));
        });
        applyVerdicts(section);
      })
      .catch(function () {
        body.innerHTML = '<p class="muted loading">Could not load this diff. <a href="#" data-retry>Try again</a></p>';
        body.setAttribute("data-loaded", "");
      });
  }

  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      var body = entry.target.querySelector(".file-body");
      if (entry.isIntersecting && !body.getAttribute("data-loaded")) loadFile(entry.target);
    });
  }, { rootMargin: "600px 0px" }) : null;
  document.querySelectorAll(".file-diff").forEach(function (section) {
    if (observer) observer.observe(section); else loadFile(section);
  });

  function ensureLoaded(section) {
    var body = section.querySelector(".file-body");
    return body.getAttribute("data-loaded") === "yes" ? Promise.resolve() : loadFile(section);
  }

  // ------------------------------------------------------------------ verdicts

  var LABELS = { accept: "accepted", reject: "rejected", partial: "partly accepted", "": "" };

  function setAttribution(element, by, at) {
    if (by) { element.setAttribute("data-by", by); element.setAttribute("data-at", at || ""); }
    else { element.removeAttribute("data-by"); element.removeAttribute("data-at"); }
  }

  // "accepted by Ada · <time>2 min ago</time>", built from the element's data attributes.
  function showVerdict(label, element) {
    var verdict = element.getAttribute("data-verdict") || "";
    label.textContent = LABELS[verdict] || "";
    var by = element.getAttribute("data-by");
    if (!by || (verdict !== "accept" && verdict !== "reject")) return;
    var who = document.createElement("span");
    who.className = "decided-by";
    who.textContent = " by " + by;
    label.append(who);
    var at = element.getAttribute("data-at");
    if (at) { label.append(" · "); label.append(timeElement(at)); }
  }

  function applyVerdicts(section) {
    var fileVerdict = section.getAttribute("data-verdict") || "";
    section.querySelectorAll(".hunk").forEach(function (hunk) {
      var label = hunk.querySelector(".hunk-verdict");
      if (label) showVerdict(label, hunk);
    });
    var badge = section.querySelector(".verdict-badge");
    if (badge) showVerdict(badge, section);
    var item = document.querySelector('.file-list li[data-path="' + CSS.escape(section.getAttribute("data-path")) + '"]');
    if (item) item.setAttribute("data-verdict", fileVerdict);
  }

  function fileVerdictFromHunks(section) {
    var hunks = section.querySelectorAll(".hunk");
    if (!hunks.length) return section.getAttribute("data-verdict") || "";
    var accepted = 0, rejected = 0;
    hunks.forEach(function (hunk) {
      var verdict = hunk.getAttribute("data-verdict");
      if (verdict === "accept") accepted += 1;
      if (verdict === "reject") rejected += 1;
    });
    if (accepted === hunks.length) return "accept";
    if (rejected === hunks.length) return "reject";
    return accepted || rejected ? "partial" : "";
  }

  function showDecision(event) {
    var sections = event.path ? [fileSection(event.path)] : Array.prototype.slice.call(document.querySelectorAll(".file-diff"));
    sections.forEach(function (section) {
      if (!section) return;
      var verdict = event.verdict === "clear" ? "" : event.verdict;
      var by = verdict ? event.by : "";
      if (event.hunk === -1) {
        section.setAttribute("data-verdict", verdict);
        setAttribution(section, by, event.at);
        section.querySelectorAll(".hunk").forEach(function (hunk) {
          hunk.setAttribute("data-verdict", verdict);
          setAttribution(hunk, by, event.at);
        });
      } else {
        var hunk = section.querySelector('.hunk[data-hunk="' + event.hunk + '"]');
        if (hunk) { hunk.setAttribute("data-verdict", verdict); setAttribution(hunk, by, event.at); }
        section.setAttribute("data-verdict", fileVerdictFromHunks(section));
        setAttribution(section, "", "");
      }
      applyVerdicts(section);
    });
  }

  function decide(section, hunk, verdict) {
    if (!canReview || !latest) return;
    var path = section.getAttribute("data-path");
    var perHunk = hunk && hunk.querySelector("[data-decide]");
    var shown = perHunk ? hunk : section;
    send({
      type: "decide", changeset_id: changesetId, path: path,
      hunk: perHunk ? Number(hunk.getAttribute("data-hunk")) : -1, verdict: verdict,
      // What this page showed: the server refuses the verdict if someone changed it since.
      expected: shown.getAttribute("data-verdict") || "undecided"
    });
  }

  // A verdict refused as stale: show what is stored (and reload the file's hunks from it).
  function showStored(current) {
    if (!current.path) {
      // "Accept all" over verdicts this page had not seen: read them all again.
      setTimeout(function () { location.reload(); }, 1500);
      return;
    }
    var section = fileSection(current.path);
    if (!section) return;
    if (current.verdict !== "partial") {
      showDecision({ path: current.path, hunk: current.hunk, verdict: current.verdict || "clear", by: current.by, at: current.at });
    }
    if (current.hunk === -1 || current.verdict === "partial") {
      if (section.querySelector(".file-body").getAttribute("data-loaded") === "yes") loadFile(section);
    }
  }

  // ------------------------------------------------------------------ reviews

  function reloadReviews() {
    var panel = document.getElementById("reviews-panel");
    if (!panel || !reviewsUrl) return;
    fetch(reviewsUrl, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var fresh = holder.querySelector("#reviews-panel");
        var old = document.getElementById("reviews-panel");
        if (fresh && old) { old.replaceWith(fresh); refreshTimes(); }
      })
      .catch(function () {});
  }

  function showApprovalGate(approval) {
    var gate = document.querySelector('[data-testid="apply-gate"]');
    var button = document.getElementById("apply-button");
    if (!approval.refusal) { if (gate) gate.remove(); return; }
    if (!gate && button) {
      gate = document.createElement("p");
      gate.className = "approval-missing";
      gate.setAttribute("data-testid", "apply-gate");
      button.before(gate);
    }
    if (gate) gate.textContent = "Not ready to apply: " + approval.refusal + ".";
  }

  // ------------------------------------------------------------------ comments

  function openCommentForm(row) {
    if (!canReview || !row) return;
    var next = row.nextElementSibling;
    if (next && next.classList.contains("comment-form-row")) { next.querySelector("textarea").focus(); return; }
    var formRow = document.createElement("tr");
    formRow.className = "comment-form-row";
    var cell = document.createElement("td");
    cell.colSpan = 3;
    cell.innerHTML = '<form class="comment-form"><textarea rows="2" placeholder="Comment on this line…" aria-label="Comment"></textarea><button type="submit" class="small">Comment</button><button type="button" class="small secondary outline" data-cancel>Cancel</button></form>';
    formRow.append(cell);
    row.after(formRow);
    var form = cell.querySelector("form");
    var textarea = form.querySelector("textarea");
    textarea.focus();
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = textarea.value.trim();
      if (!body) return;
      var section = row.closest(".file-diff");
      send({
        type: "comment", changeset_id: changesetId, path: section.getAttribute("data-path"),
        line: Number(row.getAttribute("data-line")), side: row.getAttribute("data-side"), body: body
      });
      formRow.remove();
    });
    form.querySelector("[data-cancel]").addEventListener("click", function () { formRow.remove(); });
  }

  // Reload a file's diff for a change someone made; replies and suggestions being written
  // there are kept (by thread, by hunk), and so is the focus on a thread.
  function reloadPath(path) {
    var section = fileSection(path);
    if (!section || section.querySelector(".file-body").getAttribute("data-loaded") !== "yes") return;
    var drafts = [];
    section.querySelectorAll(".thread-reply textarea, .suggest-form textarea").forEach(function (box) {
      if (box.value && box.value !== box.defaultValue) drafts.push([draftKey(box), box.value]);
    });
    var focused = document.activeElement && document.activeElement.closest ? document.activeElement.closest(".thread") : null;
    var focusedId = focused && section.contains(focused) ? focused.id : "";
    var inner = section.querySelector(".diff-inner");
    loadFile(section, "view=" + (inner ? inner.getAttribute("data-view") : view)).then(function () {
      drafts.forEach(function (draft) {
        section.querySelectorAll(".thread-reply textarea, .suggest-form textarea").forEach(function (box) {
          if (draftKey(box) !== draft[0]) return;
          box.value = draft[1];
          var details = box.closest("details");
          if (details) details.open = true;
        });
      });
      var again = focusedId ? document.getElementById(focusedId) : null;
      if (again) again.focus({ preventScroll: true });
    });
  }

  function draftKey(box) {
    var thread = box.closest(".thread");
    if (thread) return "thread-" + thread.getAttribute("data-thread");
    var hunk = box.closest(".hunk");
    return "hunk-" + (hunk ? hunk.getAttribute("data-hunk") : "");
  }

  // A thread or suggestion form's fields as a frame (numbers marked data-int stay numbers).
  function formFrame(form) {
    var frame = { type: form.getAttribute("data-action"), changeset_id: changesetId };
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || field.name === "csrfmiddlewaretoken") return;
      frame[field.name] = field.hasAttribute("data-int") ? Number(field.value) : field.value;
    });
    return frame;
  }

  // ------------------------------------------------------------------ threads

  // n / p: the next or previous unresolved thread, loading every file's diff first so
  // that threads of files not scrolled to yet count too.
  function moveThread(step) {
    var sections = Array.prototype.slice.call(document.querySelectorAll(".file-diff"));
    Promise.all(sections.map(ensureLoaded)).then(function () {
      var open = Array.prototype.slice.call(document.querySelectorAll('.thread[data-resolved="false"]'));
      if (!open.length) { toast("No unresolved threads.", "info"); return; }
      var active = document.activeElement && document.activeElement.closest ? document.activeElement.closest(".thread") : null;
      var index = active ? open.indexOf(active) : -1;
      var target = open[index < 0 ? (step > 0 ? 0 : open.length - 1) : (index + step + open.length) % open.length];
      target.scrollIntoView({ block: "start" });
      target.focus({ preventScroll: true });
      var hunk = target.closest(".hunk");
      if (hunk) { if (currentHunk) currentHunk.classList.remove("current"); currentHunk = hunk; hunk.classList.add("current"); }
    });
  }

  // ------------------------------------------------------------------ events

  var handlers = {
    "session.ready": function (event) {
      canReview = event.can_review;
      var newest = event.latest;
      if (latest && newest && (newest.changeset_id !== changesetId || newest.state !== root.getAttribute("data-changeset-state"))) {
        // The proposal moved on before this socket joined (its event came too early for us).
        location.replace(location.pathname);
        return;
      }
      if (newest && newest.changeset_id === changesetId && newest.decisions_version > decisionsVersion) {
        toast("Verdicts changed while this page was away; reload to see them all.", "info");
      }
      reloadReviews();
      setLive("live", "live");
      presence.reset();
      send({ type: "presence" });
    },
    "access.changed": function (event) {
      if (canReview !== event.can_review) toast(event.can_review ? "You can review this proposal now; reload to see every control." : "Your role no longer lets you review here.", "info");
      canReview = event.can_review;
    },
    "job.snapshot": function (event) {
      if (event.changeset_id !== changesetId) return;
      stream = { attempt: event.attempt, seq: event.seq, text: event.text };
      renderStream();
    },
    "job.rewind": function (event) {
      if (event.changeset_id !== changesetId) return;
      stream = { attempt: event.attempt, seq: event.seq, text: event.text };
      renderStream();
    },
    "job.delta": function (event) {
      if (event.changeset_id !== changesetId) return;
      if (event.attempt !== stream.attempt || event.seq !== stream.seq + 1) {
        if (event.attempt === stream.attempt && event.seq <= stream.seq) return;
        if (socket) socket.close(4000);  // lost track: a reconnect brings a fresh snapshot
        return;
      }
      stream.text += event.text;
      stream.seq = event.seq;
      renderStream();
    },
    "job.finished": function () {},
    "changeset.changed": function (event) {
      // A new proposal, or this one moving on (written → applied to the tree → ready).
      var current = root.getAttribute("data-changeset-state");
      if (event.changeset_id !== changesetId || event.state !== current) {
        if (event.changeset_id !== changesetId) toast("Proposal " + event.number + " started.", "info");
        setTimeout(function () { location.replace(location.pathname); }, event.changeset_id !== changesetId ? 400 : 0);
      }
    },
    "decision.changed": function (event) {
      if (event.changeset_id !== changesetId) return;
      decisionsVersion = Math.max(decisionsVersion, event.version || 0);
      showDecision(event);
    },
    "review.changed": function (event) {
      if (event.changeset_id !== changesetId) return;
      reloadReviews();
      showApprovalGate(event.approval);
    },
    "comment.added": function (event) {
      if (event.changeset_id !== changesetId) return;
      reloadPath(event.path);
    },
    // A thread may have been started on an earlier proposal and be shown here too.
    "thread.changed": function (event) { reloadPath(event.path); },
    "suggestion.changed": function (event) {
      // An accepted one becomes a new proposal: its "changeset.changed" moves the page on.
      reloadPath(event.path);
    },
    "apply.finished": function (event) {
      toast("Applied as " + event.commit.slice(0, 10) + " on " + event.branch + ".", "success");
      setTimeout(function () { location.reload(); }, 800);
    },
    "error": function (event) {
      toast(event.message, "error");
      if (event.code === "stale" && event.current) showStored(event.current);
    },
    "pong": function () {}
  };

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/refactors/" + sessionId + "/");
    setLive("connecting", "connecting…");
    socket.onopen = function () { retryDelay = 500; };
    socket.onmessage = function (message) {
      var event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (handlers[event.type]) handlers[event.type](event);
      else presence.handle(event);
    };
    socket.onclose = function (event) {
      if (event.code === 4403 || event.code === 4401) { setLive("closed", "no access"); return; }
      setLive("offline", "reconnecting…");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  function send(event) {
    if (!socket || socket.readyState !== 1) { toast("Not connected; trying again…", "error"); return false; }
    socket.send(JSON.stringify(event));
    return true;
  }

  // ------------------------------------------------------------------ navigation

  function hunks() { return Array.prototype.slice.call(document.querySelectorAll(".hunk")); }

  function focusHunk(hunk) {
    if (!hunk) return;
    if (currentHunk) currentHunk.classList.remove("current");
    currentHunk = hunk;
    hunk.classList.add("current");
    hunk.focus({ preventScroll: true });
    hunk.scrollIntoView({ block: "center" });
    document.querySelectorAll(".file-list li.current").forEach(function (li) { li.classList.remove("current"); });
    var section = hunk.closest(".file-diff");
    var item = document.querySelector('.file-list li[data-path="' + CSS.escape(section.getAttribute("data-path")) + '"]');
    if (item) item.classList.add("current");
  }

  function moveHunk(step) {
    var all = hunks();
    if (!all.length) {
      // Nothing loaded yet: load the first file and start there.
      var first = document.querySelector(".file-diff");
      if (first) ensureLoaded(first).then(function () { focusHunk(first.querySelector(".hunk")); });
      return;
    }
    var index = currentHunk ? all.indexOf(currentHunk) : -1;
    var next = all[index + step];
    if (next) { focusHunk(next); return; }
    if (step > 0) {
      // The next file's diff may not be loaded yet.
      var section = currentHunk ? currentHunk.closest(".file-diff").nextElementSibling : null;
      while (section && section.querySelector(".hunk")) section = section.nextElementSibling;
      if (section) ensureLoaded(section).then(function () { focusHunk(section.querySelector(".hunk")); });
    }
  }

  function moveFile(step) {
    var sections = Array.prototype.slice.call(document.querySelectorAll(".file-diff"));
    var current = currentHunk ? currentHunk.closest(".file-diff") : null;
    var target = sections[(current ? sections.indexOf(current) : -1) + step];
    if (target) ensureLoaded(target).then(function () { focusHunk(target.querySelector(".hunk")); target.scrollIntoView(); });
  }

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || event.metaKey || event.ctrlKey || event.altKey) return;
    var key = event.key;
    if (key === "Escape") {
      var stop = document.getElementById("stop-proposal");
      if (stop) send({ type: "stop", changeset_id: changesetId });
      return;
    }
    if (key === "j") moveHunk(1);
    else if (key === "k") moveHunk(-1);
    else if (key === "n") moveThread(1);
    else if (key === "p") moveThread(-1);
    else if (key === "]") moveFile(1);
    else if (key === "[") moveFile(-1);
    else if ((key === "a" || key === "r") && currentHunk) decide(currentHunk.closest(".file-diff"), currentHunk, key === "a" ? "accept" : "reject");
    else if (key === "c" && currentHunk) openCommentForm(currentHunk.querySelector("tr.ln-add, tr.ln-remove") || currentHunk.querySelector("tr"));
    else return;
    event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    var button = target.closest("[data-decide]");
    if (button) { decide(button.closest(".file-diff"), button.closest(".hunk"), button.getAttribute("data-decide")); focusHunk(button.closest(".hunk")); return; }
    var fileButton = target.closest("[data-decide-file]");
    if (fileButton) {
      var section = fileButton.closest(".file-diff");
      decide(section, null, fileButton.getAttribute("data-decide-file"));
      return;
    }
    var all = target.closest("[data-decide-all]");
    if (all) { send({ type: "decide_all", changeset_id: changesetId, verdict: all.getAttribute("data-decide-all"), expected_version: decisionsVersion }); return; }
    var comment = target.closest(".comment-add");
    if (comment) { openCommentForm(comment.closest("tr")); return; }
    var reload = target.closest("[data-reload]");
    if (reload) { event.preventDefault(); loadFile(reload.closest(".file-diff"), reload.getAttribute("data-reload")); return; }
    var retry = target.closest("[data-retry]");
    if (retry) { event.preventDefault(); loadFile(retry.closest(".file-diff")); return; }
    if (target.id === "toggle-view") {
      view = view === "unified" ? "split" : "unified";
      target.textContent = view === "unified" ? "Side by side" : "Unified";
      document.querySelectorAll(".file-diff").forEach(function (section) {
        if (section.querySelector(".file-body").getAttribute("data-loaded") === "yes") loadFile(section, "view=" + view);
      });
      return;
    }
    if (target.id === "stop-proposal") send({ type: "stop", changeset_id: changesetId });
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("data-action") && socket && socket.readyState === 1) {
      event.preventDefault();
      var frame = formFrame(form);
      if ((frame.type === "reply") && !String(frame.body).trim()) return;
      if (send(frame) && frame.type === "reply") form.querySelector("textarea").value = "";
      return;
    }
    if (form.id !== "review-form" || !socket || socket.readyState !== 1) return;  // else: a plain post
    event.preventDefault();
    var state = event.submitter ? event.submitter.value : "approve";
    var summary = form.querySelector("textarea[name=summary]");
    if (send({ type: "review", changeset_id: changesetId, state: state, summary: summary ? summary.value : "" }) && summary) summary.value = "";
  });

  var applyForm = document.getElementById("apply-form");
  if (applyForm) {
    // One click applies once (the server is idempotent too).
    applyForm.addEventListener("submit", function () {
      var button = document.getElementById("apply-button");
      setTimeout(function () { button.disabled = true; button.setAttribute("aria-busy", "true"); }, 0);
    });
  }

  window.qwebRefactor = { stream: function () { return stream; } };
  connect();
})();
