// The playground page: one private chat with the bot, rendered like Telegram.
// Bot text is never inserted as HTML: text and its entities become DOM nodes (textContent),
// and links keep only http(s), tg and mailto addresses.
"use strict";

const POLL_RETRY_MS = 1000;
const TOAST_MS = 3000;
const SAFE_PROTOCOLS = new Set(["http:", "https:", "tg:", "mailto:"]);

const chat = document.getElementById("chat");
const toast = document.getElementById("toast");
const replyKeyboard = document.getElementById("reply-keyboard");
const textBox = document.getElementById("text");
const fileInput = document.getElementById("file-input");
const attachButton = document.getElementById("attach-button");
const attachMenu = document.getElementById("attach-menu");

const state = {
  afterSeq: 0,    // the sandbox's seq of the last bot action shown
  seen: 0,        // how many actions the chat log held then
  bubbles: new Map(),  // message_id -> the element that shows that message
  albums: new Map(),   // media_group_id -> the album bubble's grid
  uploadKind: "document",
};

// ------------------------------------------------------------------ helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function timeOf(unixSeconds) {
  const date = unixSeconds ? new Date(unixSeconds * 1000) : new Date();
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function humanSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function nearBottom() {
  return chat.scrollHeight - chat.scrollTop - chat.clientHeight < 120;
}

function scrollDown() {
  chat.scrollTop = chat.scrollHeight;
}

function showToast(text, alert) {
  toast.textContent = text;
  toast.classList.toggle("alert", Boolean(alert));
  toast.hidden = false;
  clearTimeout(showToast.timer);
  if (!alert) showToast.timer = setTimeout(() => { toast.hidden = true; }, TOAST_MS);
}
toast.addEventListener("click", () => { toast.hidden = true; });

async function post(path, body) {
  const response = await fetch(path, body instanceof FormData
    ? { method: "POST", body }
    : { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body) });
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText}`;
    try { reason = (await response.json()).error || reason; } catch { /* not JSON */ }
    showToast(`Not sent: ${reason}`, true);
    return false;
  }
  return true;
}

// ------------------------------------------------------------------ text and entities

const ENTITY_TAGS = {
  bold: "strong", italic: "em", underline: "u", strikethrough: "s", code: "code",
  pre: "pre", blockquote: "blockquote", expandable_blockquote: "blockquote",
};

function entityNode(entity, covered) {
  const tag = ENTITY_TAGS[entity.type];
  if (tag) return el(tag);
  let href = null;
  if (entity.type === "text_link") href = safeUrl(entity.url);
  else if (entity.type === "url") href = safeUrl(/^[a-z]+:/i.test(covered) ? covered : `https://${covered}`);
  else if (entity.type === "email") href = safeUrl(`mailto:${covered}`);
  if (href) {
    const link = el("a");
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    return link;
  }
  if (entity.type === "spoiler") {
    const spoiler = el("span", "spoiler");
    spoiler.addEventListener("click", () => spoiler.classList.add("revealed"));
    return spoiler;
  }
  if (entity.type === "bot_command") {
    const command = el("span", "command");
    command.addEventListener("click", () => sendText(covered));
    return command;
  }
  if (["mention", "hashtag", "cashtag", "text_mention", "phone_number"].includes(entity.type)) {
    return el("span", "link");
  }
  return el("span");
}

// Build nested nodes: entities sorted by start (longest first); an entity that overlaps a
// sibling without nesting is skipped (its text still shows), as Telegram clients do.
function appendEntities(parent, text, entities, start, end) {
  let position = start;
  let index = 0;
  while (index < entities.length) {
    const entity = entities[index];
    const from = Math.max(entity.offset, start);
    const to = Math.min(entity.offset + entity.length, end);
    if (from < position || to <= from) { index += 1; continue; }
    if (from > position) parent.append(text.slice(position, from));
    const inner = [];
    let next = index + 1;
    while (next < entities.length && entities[next].offset < to) inner.push(entities[next++]);
    const node = entityNode(entity, text.slice(from, to));
    appendEntities(node, text, inner, from, to);
    parent.append(node);
    position = to;
    index = next;
  }
  if (position < end) parent.append(text.slice(position, end));
}

function formatted(text, entities, className) {
  const node = el("div", className);
  const sorted = (entities || []).slice().sort((a, b) => a.offset - b.offset || b.length - a.length);
  appendEntities(node, text, sorted, 0, text.length);
  return node;
}

// ------------------------------------------------------------------ media

function fileUrl(fileId) {
  return `/api/file/${encodeURIComponent(fileId)}`;
}

function missing(kind) {
  return el("div", "media-missing", `${kind} (no bytes in the sandbox: sent by URL)`);
}

function mediaNode(message, reference) {
  if (message && Array.isArray(message.photo) && message.photo.length) {
    const largest = message.photo.reduce((a, b) => ((a.width || 0) >= (b.width || 0) ? a : b));
    return imageNode(largest.file_id, largest);
  }
  for (const kind of ["video", "animation", "video_note"]) {
    if (message && message[kind]) return playerNode("video", kind, message[kind]);
  }
  for (const kind of ["audio", "voice"]) {
    if (message && message[kind]) return playerNode("audio", kind, message[kind]);
  }
  if (message && message.document) return documentNode(message.document);
  if (reference && reference.file_id) {  // the message is gone: show what the log kept
    if (reference.type === "photo") return imageNode(reference.file_id, reference);
    return documentNode({ file_id: reference.file_id, file_name: reference.file_name || reference.type });
  }
  return null;
}

function imageNode(fileId, size) {
  const image = el("img", "photo");
  image.alt = "photo";
  image.loading = "lazy";
  if (size.width && size.height) image.style.aspectRatio = `${size.width} / ${size.height}`;
  image.addEventListener("error", () => image.replaceWith(missing("photo")));
  image.src = fileUrl(fileId);
  return image;
}

function playerNode(tag, kind, media) {
  const box = el("div", `player ${kind}`);
  const player = el(tag);
  player.controls = true;
  player.preload = "metadata";
  if (kind === "animation") { player.autoplay = true; player.loop = true; player.muted = true; }
  player.addEventListener("error", () => player.replaceWith(missing(kind)));
  player.src = fileUrl(media.file_id);
  box.append(player);
  const label = media.title || media.file_name;
  if (label || media.duration) {
    box.append(el("div", "media-label", [label, media.duration ? `${media.duration} s` : ""]
      .filter(Boolean).join(" · ")));
  }
  return box;
}

function documentIcon() {
  return el("span", "doc-icon");  // drawn by the style sheet: no emoji font needed
}

function documentNode(documentInfo) {
  const link = el("a", "document");
  link.href = fileUrl(documentInfo.file_id);
  link.download = documentInfo.file_name || "file";
  link.append(documentIcon());
  const about = el("span", "doc-about");
  about.append(el("span", "doc-name", documentInfo.file_name || "file"),
               el("span", "doc-size", humanSize(documentInfo.file_size)));
  link.append(about);
  return link;
}

// ------------------------------------------------------------------ keyboards

function inlineKeyboard(messageId, markup) {
  const rows = markup && markup.inline_keyboard;
  if (!Array.isArray(rows) || !rows.length) return null;
  const keyboard = el("div", "inline-keyboard");
  for (const row of rows) {
    const line = el("div", "row");
    for (const button of row) line.append(inlineButton(messageId, button));
    keyboard.append(line);
  }
  return keyboard;
}

function inlineButton(messageId, button) {
  const href = button.url ? safeUrl(button.url) : null;
  if (href) {
    const link = el("a", "button link-button", button.text);
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    return link;
  }
  const node = el("button", "button", button.text);
  node.type = "button";
  if (button.callback_data === undefined) {
    node.disabled = true;
    node.title = "not available in the playground";
    return node;
  }
  node.addEventListener("click", async () => {
    node.classList.add("pressed");
    await post("/api/press", { message_id: messageId, data: button.callback_data });
    setTimeout(() => node.classList.remove("pressed"), 600);
  });
  return node;
}

function applyReplyKeyboard(markup) {
  if (!markup || typeof markup !== "object") return;
  if (markup.remove_keyboard) {
    replyKeyboard.hidden = true;
    replyKeyboard.replaceChildren();
    return;
  }
  if (!Array.isArray(markup.keyboard)) return;
  replyKeyboard.replaceChildren();
  for (const row of markup.keyboard) {
    const line = el("div", "row");
    for (const button of row) {
      const label = typeof button === "string" ? button : button.text;
      const node = el("button", "button", label);
      node.type = "button";
      node.addEventListener("click", () => {
        if (markup.one_time_keyboard) replyKeyboard.hidden = true;
        sendText(label);
      });
      line.append(node);
    }
    replyKeyboard.append(line);
  }
  textBox.placeholder = markup.input_field_placeholder || "Message";
  replyKeyboard.hidden = false;
}

// ------------------------------------------------------------------ bubbles

function newBubble(side, date) {
  const bubble = el("div", `msg ${side}`);
  const body = el("div", "body");
  bubble.append(body, el("div", "meta", timeOf(date)));
  chat.append(bubble);
  return bubble;
}

// Fill a bot message's element from the message as it is now (or the log entry's copy).
function fill(node, item) {
  const message = item.message;
  const body = node.querySelector(".body") || node;
  body.replaceChildren();
  if (message && message.forward_origin) body.append(el("div", "forwarded", "Forwarded message"));
  const media = mediaNode(message, item.media);
  if (media) body.append(media);
  const text = message ? message.text : item.text;
  const caption = message ? message.caption : item.caption;
  if (text) body.append(formatted(text, message && message.entities, "text"));
  else if (caption) body.append(formatted(caption, message && message.caption_entities, "text caption"));
  const markup = message ? message.reply_markup : item.reply_markup;
  const keyboard = inlineKeyboard(item.message_id, markup);
  const old = node.querySelector(":scope > .inline-keyboard");
  if (old) old.remove();
  if (keyboard) node.append(keyboard);
  const meta = node.querySelector(":scope > .meta");
  if (meta && message && message.edit_date) meta.textContent = `edited ${timeOf(message.edit_date)}`;
}

function albumCell(item) {
  const groupId = item.media_group_id;
  let grid = state.albums.get(groupId);
  if (!grid) {
    const bubble = newBubble("bot album", item.date);
    grid = el("div", "album-grid");
    bubble.querySelector(".body").append(grid);
    state.albums.set(groupId, grid);
  }
  const cell = el("div", "cell");
  grid.append(cell);
  return cell;
}

function apply(item) {
  const method = item.method || "";
  if (method === "answerCallbackQuery") {
    if (item.text) showToast(item.text, item.show_alert);
    return;
  }
  if (method === "deleteMessage") {
    const node = state.bubbles.get(item.message_id);
    if (node) node.remove();
    state.bubbles.delete(item.message_id);
    return;
  }
  if (!("message" in item)) return;  // an action the page does not show
  let node = state.bubbles.get(item.message_id);
  if (!node) {
    node = item.media_group_id ? albumCell(item) : newBubble("bot", item.date);
    node.dataset.messageId = String(item.message_id);
    state.bubbles.set(item.message_id, node);
  }
  fill(node, item);
  if (method.startsWith("send") || method === "copyMessage" || method === "forwardMessage") {
    applyReplyKeyboard(item.reply_markup);
  }
}

// ------------------------------------------------------------------ the long poll

async function poll() {
  const status = document.getElementById("bot-status");
  for (;;) {
    try {
      const response = await fetch(`/api/updates?after_seq=${state.afterSeq}&seen=${state.seen}`);
      if (!response.ok) throw new Error(String(response.status));
      const body = await response.json();
      const stick = nearBottom();
      for (const item of body.items) {
        state.afterSeq = Math.max(state.afterSeq, item.seq);
        apply(item);
      }
      state.seen = body.total;
      status.textContent = "bot · online";
      if (stick || body.items.length) scrollDown();
    } catch {
      status.textContent = "reconnecting…";
      await new Promise((resolve) => setTimeout(resolve, POLL_RETRY_MS));
    }
  }
}

// ------------------------------------------------------------------ what you send

async function sendText(text) {
  const trimmed = text.trim();
  if (!trimmed) return;
  const bubble = newBubble("user");
  bubble.querySelector(".body").append(el("div", "text", trimmed));
  scrollDown();
  if (!(await post("/api/send", { text: trimmed }))) bubble.classList.add("failed");
}

async function sendFile(kind, file) {
  const caption = textBox.value.trim();
  textBox.value = "";
  const bubble = newBubble("user");
  const body = bubble.querySelector(".body");
  if (kind === "photo") {
    const preview = el("img", "photo");
    preview.alt = file.name;
    preview.src = URL.createObjectURL(file);
    body.append(preview);
  } else {
    const about = el("div", "document");
    about.append(documentIcon(), el("span", "doc-name", `${file.name} · ${humanSize(file.size)}`));
    body.append(about);
  }
  if (caption) body.append(el("div", "text caption", caption));
  scrollDown();
  const form = new FormData();
  form.append("kind", kind);
  form.append("caption", caption);
  form.append("file", file, file.name);
  if (!(await post("/api/upload", form))) bubble.classList.add("failed");
}

document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = textBox.value;
  textBox.value = "";
  sendText(text);
});

textBox.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    document.getElementById("composer").requestSubmit();
  }
});

attachButton.addEventListener("click", () => {
  attachMenu.hidden = !attachMenu.hidden;
  attachButton.setAttribute("aria-expanded", String(!attachMenu.hidden));
});

for (const choice of attachMenu.querySelectorAll("button")) {
  choice.addEventListener("click", () => {
    state.uploadKind = choice.dataset.kind;
    fileInput.accept = choice.dataset.accept;
    attachMenu.hidden = true;
    fileInput.click();
  });
}

fileInput.addEventListener("change", () => {
  const file = fileInput.files && fileInput.files[0];
  fileInput.value = "";
  if (file) sendFile(state.uploadKind, file);
});

async function start() {
  try {
    const me = await (await fetch("/api/me")).json();
    document.getElementById("bot-name").textContent = me.bot.first_name;
    document.title = `${me.bot.first_name} · kiebot playground`;
  } catch { /* the header keeps its default */ }
  poll();
}

start();
