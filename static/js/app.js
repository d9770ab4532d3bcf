// qweb page behaviour: toasts, copy buttons, slug suggestions, live workspace events.
(function () {
  "use strict";

  function toast(text, kind) {
    var box = document.getElementById("messages");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (kind || "info");
    el.setAttribute("role", "status");
    var span = document.createElement("span");
    span.textContent = text;  // never innerHTML: event text comes from other users
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.setAttribute("data-dismiss", "");
    close.textContent = "×";
    el.append(span, close);
    box.append(el);
    setTimeout(function () { el.remove(); }, 6000);
  }
  window.qwebToast = toast;

  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) { dismiss.closest(".toast").remove(); return; }
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var input = document.querySelector(copy.getAttribute("data-copy"));
      input.select();
      (navigator.clipboard ? navigator.clipboard.writeText(input.value) : Promise.reject())
        .then(function () { toast("Link copied.", "success"); })
        .catch(function () { document.execCommand("copy"); toast("Link copied.", "success"); });
    }
  });

  function autoDismiss() {
    document.querySelectorAll("#messages .toast").forEach(function (el) {
      if (el.dataset.timer) return;
      el.dataset.timer = "1";
      setTimeout(function () { el.remove(); }, el.classList.contains("toast-error") ? 10000 : 6000);
    });
  }

  // Suggest an address from the name until the user edits the address themselves.
  function slugify(text) {
    return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 50).replace(/-+$/, "");
  }
  function wireSlugs() {
    document.querySelectorAll("form[data-slugify]").forEach(function (form) {
      var name = form.querySelector("[name=name]"), slug = form.querySelector("[name=slug]");
      if (!name || !slug || form.dataset.wired) return;
      form.dataset.wired = "1";
      var touched = slug.value !== "";
      slug.addEventListener("input", function () { touched = slug.value !== ""; });
      name.addEventListener("input", function () { if (!touched) slug.value = slugify(name.value); });
    });
  }

  // Live workspace events: refresh the member list and say what happened.
  function connectWorkspace(el) {
    var slug = el.getAttribute("data-workspace-socket");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var delay = 1000;
    function open() {
      var socket = new WebSocket(scheme + location.host + "/ws/w/" + slug + "/");
      socket.onopen = function () { delay = 1000; };
      socket.onmessage = function (message) {
        var event = JSON.parse(message.data);
        var texts = {
          "member.joined": event.name + " joined the workspace.",
          "member.role_changed": event.name + " is now " + event.role + ".",
          "member.removed": event.name + " left the workspace."
        };
        if (texts[event.type]) toast(texts[event.type], "info");
        if (!window.htmx) return;
        // Member events refresh the member pages' lists; list.changed the refactor list.
        var lists = event.type === "list.changed" ? ["#refactor-sessions"] : ["#member-table", "#invitations"];
        lists.forEach(function (selector) {
          if (document.querySelector(selector)) {
            htmx.ajax("GET", location.pathname, { target: selector, select: selector, swap: "outerHTML" });
          }
        });
      };
      socket.onclose = function (event) {
        if (event.code === 4403) { toast("You are no longer a member of this workspace.", "warning"); return; }
        if (event.code === 4401) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    open();
  }

  document.addEventListener("DOMContentLoaded", function () {
    autoDismiss();
    wireSlugs();
    document.querySelectorAll("[data-workspace-socket]").forEach(connectWorkspace);
  });
  document.addEventListener("htmx:afterSettle", autoDismiss);
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var status = xhr.status;
    if (status === 400) return;  // forms re-render with their errors
    // A git failure comes with its reason as one line of text (qweb/middleware.py).
    var reason = status === 503 && /^text\/plain/.test(xhr.getResponseHeader("Content-Type") || "");
    toast(reason ? xhr.responseText.slice(0, 500) : status === 403 ? "Your role doesn't allow that." :
          status === 404 ? "That no longer exists." : "Something went wrong (" + status + "). Try again.", "error");
  });
  // 400 responses carry re-rendered forms: let htmx swap them in.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 400) { event.detail.shouldSwap = true; event.detail.isError = false; }
  });
})();

// Uploads: drag and drop onto the drop zone, and a real progress bar while the bytes go up.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-upload]");
    if (!form) return;
    var zone = form.querySelector("[data-dropzone]");
    var input = form.querySelector("input[type=file]");
    var bar = form.querySelector("[data-upload-progress]");
    var status = form.querySelector("[data-upload-status]");
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("dragover"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("dragover"); });
    });
    zone.addEventListener("drop", function (e) {
      if (e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        status.textContent = "Ready to upload " + input.files[0].name + ".";
        var name = form.querySelector("[name=name]");
        if (name && !name.value) name.value = input.files[0].name.replace(/\.(zip|tar|tgz|txz|tar\.gz|tar\.xz)$/i, "");
      }
    });
    form.addEventListener("submit", function (e) {
      if (!input.files.length) return;  // let the server say what is missing
      e.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || location.href);
      xhr.upload.onprogress = function (p) {
        if (!p.lengthComputable) return;
        bar.hidden = false;
        bar.value = Math.round(100 * p.loaded / p.total);
        status.textContent = "Uploading… " + bar.value + "%";
      };
      xhr.onload = function () {
        if (xhr.responseURL && xhr.responseURL !== location.href && xhr.status < 400) {
          location.href = xhr.responseURL;
        } else {
          document.open(); document.write(xhr.responseText); document.close();
        }
      };
      xhr.onerror = function () { status.textContent = "The upload failed: the connection was lost. Try again."; };
      form.querySelector("button[type=submit]").disabled = true;
      xhr.send(new FormData(form));
    });
  });
})();

// Keyboard: "/" opens or focuses search, as on code hosts people know.
document.addEventListener("keydown", function (event) {
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  var target = event.target;
  if (target.closest("input, textarea, select, [contenteditable]")) return;
  var field = document.querySelector("input[type=search]");
  if (field) { event.preventDefault(); field.focus(); return; }
  var link = document.querySelector("[data-shortcut='/']");
  if (link) { event.preventDefault(); location.href = link.href; }
});

// Who else has this page open: fed by a consumer's presence.* events (see qweb/consumers.py).
window.qwebPresence = function (container) {
  var people = {};  // presence id (one per socket) -> person
  function render() {
    if (!container) return;
    var byUser = {};
    Object.keys(people).forEach(function (id) { byUser[people[id].user_id] = people[id]; });
    var users = Object.keys(byUser).map(function (id) { return byUser[id]; });
    container.textContent = "";
    users.slice(0, 8).forEach(function (person) {
      var avatar = document.createElement("span");
      avatar.className = "avatar avatar-small";
      avatar.title = person.name;  // textContent/title only: names come from other users
      avatar.textContent = person.initials;
      container.append(avatar);
    });
    if (users.length) {
      var label = document.createElement("small");
      label.className = "muted";
      label.textContent = users.length === 1 ? " " + users[0].name + " is here too" : " " + users.length + " others here";
      container.append(label);
    }
    container.setAttribute("data-count", String(users.length));
  }
  return {
    reset: function () { people = {}; render(); },
    handle: function (event) {
      if (event.type === "presence.joined" || event.type === "presence.here") people[event.presence_id] = event;
      else if (event.type === "presence.left") delete people[event.presence_id];
      else return false;
      render();
      return true;
    }
  };
};

// What pages would otherwise write inline, which the Content-Security-Policy forbids
// (qweb/settings.py): confirmations, a select that submits its form, "Go back" links, and
// widths given as data-width (set through the CSSOM, which the policy allows).
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
  }, true);
  document.addEventListener("change", function (event) {
    var field = event.target.closest("[data-autosubmit]");
    if (field && field.form) field.form.submit();
  });
  document.addEventListener("click", function (event) {
    var back = event.target.closest("[data-history-back]");
    // Opened in a fresh tab there is nothing to go back to: the link's own href serves.
    if (back && history.length > 1) { event.preventDefault(); history.back(); }
  });

  function applyWidths(root) {
    var nodes = Array.prototype.slice.call(root.querySelectorAll("[data-width]"));
    if (root.matches && root.matches("[data-width]")) nodes.push(root);
    nodes.forEach(function (el) {
      var percent = Math.max(0, Math.min(100, Number(el.getAttribute("data-width")) || 0));
      el.style.width = percent + "%";
    });
  }
  applyWidths(document);
  // Fragments arrive through htmx and through chat.js's innerHTML alike.
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) { if (node.nodeType === 1) applyWidths(node); });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
})();

// Menus that collapse at phone width (the header's and the workspace tabs): a button with
// aria-controls and aria-expanded opens its menu (.is-open, see app.css). A click elsewhere
// or Escape closes it; Escape hands the focus back to the button.
(function () {
  "use strict";
  function menuOf(button) { return document.getElementById(button.getAttribute("aria-controls")); }
  function setOpen(button, open) {
    button.setAttribute("aria-expanded", open ? "true" : "false");
    var menu = menuOf(button);
    if (menu) menu.classList.toggle("is-open", open);
  }
  function openToggles() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-menu-toggle][aria-expanded='true']"));
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-menu-toggle]");
    openToggles().forEach(function (other) {
      var menu = menuOf(other);
      if (other !== button && !(menu && menu.contains(event.target))) setOpen(other, false);
    });
    if (button) setOpen(button, button.getAttribute("aria-expanded") !== "true");
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    openToggles().forEach(function (button) {
      var menu = menuOf(button);
      // Only when the focus is in the menu or on its button: Esc also stops answers.
      if (button !== document.activeElement && !(menu && menu.contains(document.activeElement))) return;
      setOpen(button, false);
      if (menu) menu.querySelectorAll("details[open]").forEach(function (d) { d.open = false; });
      button.focus();
      event.preventDefault();
    });
  });
})();

// The branch picker on repository pages (templates/repos/_ref_picker.html): opening it
// focuses a filter box over the branches and tags; arrow keys walk what matches, Enter
// opens the first match, Escape or a click elsewhere closes it.
(function () {
  "use strict";
  function entries(picker) {
    return Array.prototype.slice.call(picker.querySelectorAll("li[data-ref-name]"));
  }
  function visibleLinks(picker) {
    return entries(picker).filter(function (li) { return !li.hidden; })
      .map(function (li) { return li.querySelector("a"); });
  }
  function narrow(picker) {
    var field = picker.querySelector("[data-ref-filter]");
    var words = field ? field.value.trim().toLowerCase() : "";
    var shown = 0;
    entries(picker).forEach(function (li) {
      var match = !words || li.getAttribute("data-ref-name").toLowerCase().indexOf(words) !== -1;
      li.hidden = !match;
      if (match) shown += 1;
    });
    picker.querySelectorAll("[data-ref-group]").forEach(function (group) { group.hidden = words !== ""; });
    var none = picker.querySelector("[data-ref-none]");
    if (none) none.hidden = shown > 0;
  }
  // "toggle" does not bubble: listen while it is captured on its way down.
  document.addEventListener("toggle", function (event) {
    var picker = event.target;
    if (!(picker instanceof Element) || !picker.matches("[data-ref-picker]") || !picker.open) return;
    var field = picker.querySelector("[data-ref-filter]");
    if (!field) return;
    field.value = "";
    narrow(picker);
    field.focus();
  }, true);
  document.addEventListener("input", function (event) {
    var field = event.target.closest && event.target.closest("[data-ref-filter]");
    if (field) narrow(field.closest("[data-ref-picker]"));
  });
  document.addEventListener("keydown", function (event) {
    var picker = event.target.closest && event.target.closest("[data-ref-picker][open]");
    if (!picker) return;
    if (event.key === "Escape") {
      picker.open = false;
      picker.querySelector("summary").focus();
      event.preventDefault();
      return;
    }
    var links = visibleLinks(picker);
    if (!links.length) return;
    var index = links.indexOf(document.activeElement);
    if (event.key === "Enter" && index === -1 && event.target.matches("[data-ref-filter]")) {
      event.preventDefault();
      links[0].click();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      index = event.key === "ArrowDown" ? Math.min(links.length - 1, index + 1) : index - 1;
      if (index < 0) picker.querySelector("[data-ref-filter]").focus();
      else links[index].focus();
    }
  });
  document.addEventListener("click", function (event) {
    document.querySelectorAll("[data-ref-picker][open]").forEach(function (picker) {
      if (!picker.contains(event.target)) picker.open = false;
    });
  });
  // "w" opens the picker, as on the code hosts people know.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "w" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, [contenteditable]")) return;
    var picker = document.querySelector("[data-ref-picker]");
    if (!picker || picker.open) return;
    event.preventDefault();
    picker.open = true;
  });
})();

// A box that scrolls by itself (code, diffs, a long answer) must take the keyboard's focus,
// or keyboard users cannot scroll it: such boxes without a focusable child get tabindex=0.
(function () {
  "use strict";
  var BOXES = "pre, .code-view, .snippet, .proposal-stream, .model-answer";
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  function mark() {
    document.querySelectorAll(BOXES).forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1;
      if (box.getAttribute("data-scroll-focus") === "1") {
        if (!scrolls) { box.removeAttribute("tabindex"); box.removeAttribute("data-scroll-focus"); }
        return;
      }
      if (scrolls && !box.hasAttribute("tabindex") && !box.querySelector(FOCUSABLE)) {
        box.setAttribute("tabindex", "0");
        box.setAttribute("data-scroll-focus", "1");
      }
    });
  }
  var pending = null;
  function later() { if (!pending) pending = setTimeout(function () { pending = null; mark(); }, 150); }
  document.addEventListener("DOMContentLoaded", mark);
  window.addEventListener("resize", later);
  new MutationObserver(later).observe(document.documentElement, { childList: true, subtree: true });
})();
