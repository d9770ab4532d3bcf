// Model answers rendered in the browser while they stream in. Untrusted text: the rules are
// those of qweb/lib/markdown.py (no raw HTML, only http(s)/mailto/relative links, images
// never loaded), and the HTML has the same shape, so the server's final render replaces
// this one without the page jumping. Change both together.
// Needs vendor/markdown-it/markdown-it.min.js; vendor/highlight/highlight.min.js is optional.
(function () {
  "use strict";

  var MAX_INPUT_CHARS = 400000;
  var MAX_HIGHLIGHT_CHARS = 100000;
  var LINK_REL = "nofollow noopener noreferrer";
  var ALLOWED_SCHEMES = ["http", "https", "mailto"];
  var IMAGE_SCHEMES = ["http", "https"];
  // Whatever stands before a colon that comes before any "/", "?" or "#" is a scheme, so
  // "java%09script:" is refused rather than taken for a relative path.
  var SCHEME = /^([^/?#]*):/;
  var LANGUAGE = /^[A-Za-z0-9_+#.-]{1,40}$/;

  var md = window.markdownit("commonmark", { html: false, linkify: false, typographer: false });
  md.enable(["table", "strikethrough"]);
  var escapeHtml = md.utils.escapeHtml;
  var ALIGN_STYLE = /^text-align:(left|center|right)$/;

  // Table cells' style="text-align:…" becomes class="md-align-…": the page's
  // Content-Security-Policy refuses style attributes.
  md.core.ruler.push("align_as_class", function (state) {
    state.tokens.forEach(function (token) {
      if ((token.type !== "th_open" && token.type !== "td_open") || !token.attrs) return;
      var match = ALIGN_STYLE.exec(token.attrGet("style") || "");
      token.attrs = token.attrs.filter(function (attr) { return attr[0] !== "style"; });
      if (match) token.attrSet("class", "md-align-" + match[1]);
    });
  });

  function linkScheme(url) {
    var match = SCHEME.exec(url.trim());
    return match ? match[1].toLowerCase() : "";
  }

  // Called after markdown-it has decoded entities and percent-encoded the target.
  md.validateLink = function (url) {
    var match = SCHEME.exec(url.trim());
    return match === null || ALLOWED_SCHEMES.indexOf(match[1].toLowerCase()) !== -1;
  };

  function fenceLanguage(info) {
    var words = md.utils.unescapeAll(info).trim().split(/\s+/);
    return words[0] && LANGUAGE.test(words[0]) ? words[0].toLowerCase() : "";
  }

  function highlighted(code, language) {
    var hljs = window.hljs;
    if (!hljs || code.length > MAX_HIGHLIGHT_CHARS || !hljs.getLanguage(language)) return null;
    try {
      return hljs.highlight(code, { language: language, ignoreIllegals: true }).value;
    } catch (error) {
      return null;
    }
  }

  function codeBlockHtml(code, language) {
    var body = language ? highlighted(code, language) : null;
    if (body === null) body = escapeHtml(code);
    var codeClass = language ? ' class="language-' + escapeHtml(language) + '"' : "";
    return '<pre class="highlight" data-language="' + escapeHtml(language || "text") + '">' +
      "<code" + codeClass + ">" + body + "</code></pre>\n";
  }

  var rules = md.renderer.rules;
  rules.fence = function (tokens, idx) {
    return codeBlockHtml(tokens[idx].content, fenceLanguage(tokens[idx].info));
  };
  rules.code_block = function (tokens, idx) {
    return codeBlockHtml(tokens[idx].content, "");
  };
  rules.link_open = function (tokens, idx, options, env, self) {
    var token = tokens[idx];
    // In-page anchors stay in the tab and need no protection from the target page.
    if ((token.attrGet("href") || "").charAt(0) !== "#") {
      token.attrSet("rel", LINK_REL);
      token.attrSet("target", "_blank");
    }
    return self.renderToken(tokens, idx, options);
  };
  rules.image = function (tokens, idx, options, env, self) {
    var token = tokens[idx];
    var alt = escapeHtml(self.renderInlineAsText(token.children || [], options, env));
    var src = token.attrGet("src") || "";
    if (IMAGE_SCHEMES.indexOf(linkScheme(src)) === -1) return alt;
    return '<a href="' + escapeHtml(src) + '" class="md-image-link" rel="' + LINK_REL +
      '" target="_blank">\u{1F5BC} ' + (alt || "image") + "</a>";
  };

  function render(text) {
    text = String(text == null ? "" : text);
    var note = "";
    if (text.length > MAX_INPUT_CHARS) {
      note = '<p class="md-truncated">(Truncated: showing the first ' +
        MAX_INPUT_CHARS.toLocaleString("en-US") + " of " + text.length.toLocaleString("en-US") +
        " characters.)</p>";
      text = text.slice(0, MAX_INPUT_CHARS);
    }
    return md.render(text) + note;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return legacyCopy(text); });
    }
    return legacyCopy(text);
  }

  // Plain-http deployments have no navigator.clipboard.
  function legacyCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } finally {
      area.remove();
    }
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function codeText(pre) {
    var code = pre.querySelector("code");
    if (code) return code.textContent;
    var text = "";
    pre.childNodes.forEach(function (node) {
      if (!(node.classList && node.classList.contains("md-copy"))) text += node.textContent;
    });
    return text;
  }

  // Adds a Copy button to each code block under root; calling it again adds none twice.
  function enhance(root) {
    (root || document).querySelectorAll("pre").forEach(function (pre) {
      if (pre.querySelector(":scope > .md-copy")) return;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "md-copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy code");
      button.addEventListener("click", function () {
        copyText(codeText(pre)).then(
          function () { flash(button, "Copied"); },
          function () { flash(button, "Copy failed"); }
        );
      });
      pre.prepend(button);
    });
  }

  function flash(button, text) {
    button.textContent = text;
    clearTimeout(button.qwebTimer);
    button.qwebTimer = setTimeout(function () { button.textContent = "Copy"; }, 1500);
  }

  window.qwebMarkdown = { render: render, enhance: enhance };
})();
