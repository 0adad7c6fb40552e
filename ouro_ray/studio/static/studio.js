// ouro studio: the pages' behaviour. Plain JavaScript, no dependencies, no build step.
// Every write sends the session token in the X-Ouro-Token header (from the page's <meta> tag) and the
// seconds the person took, measured from when the item was shown to the answer.
"use strict";

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
  const token = $('meta[name="ouro-token"]').content;
  const now = () => performance.now();
  const secondsSince = (t) => Math.max(0, (now() - t) / 1000);
  const typing = (ev) => ev.target instanceof Element && ev.target.matches("input, textarea, select");

  async function api(path, body) {
    const init = { method: body === undefined ? "GET" : "POST", credentials: "same-origin",
                   headers: { "X-Ouro-Token": token, "Content-Type": "application/json" } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const resp = await fetch(path, init);
    let data;
    try { data = await resp.json(); } catch (_) { data = { error: `the studio answered HTTP ${resp.status}` }; }
    if (!resp.ok) throw new Error(data.error || `the studio answered HTTP ${resp.status}`);
    return data;
  }

  let statusTimer = null;
  function say(message, kind) {
    const box = $("#status");
    box.textContent = message;
    box.className = kind;
    box.hidden = false;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { box.hidden = true; }, kind === "ok" ? 6000 : 12000);
  }

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ------------------------------------------------------------------ Chat (stage 1)
  function chatPage() {
    const list = $("#dialogue"), box = $("#message");
    let turns = [], started = now(), busy = false;

    function render(pendingText) {
      list.replaceChildren();
      if (!turns.length && pendingText === undefined) {
        list.append(el("li", { class: "empty" }, "No messages yet. The policy answers each message with the run's sampling settings."));
      }
      for (const t of turns) {
        const li = el("li", { class: `turn ${t.role}` });
        li.append(el("span", { class: "who" }, t.role === "human" ? "you" : "policy"), el("p", {}, t.text));
        list.append(li);
      }
      if (pendingText !== undefined) {
        const li = el("li", { class: "turn human" });
        li.append(el("span", { class: "who" }, "you"), el("p", {}, pendingText));
        list.append(li, el("li", { class: "turn assistant pending" }, "the policy is answering…"));
      }
    }

    async function send() {
      if (busy) return;
      busy = true;
      const message = box.value;
      if (message.trim()) render(message.trim());
      try {
        const r = await api("/api/chat/reply", { turns, message });
        turns.push({ role: "human", text: message.trim() }, { role: "assistant", text: r.reply });
        box.value = "";
      } catch (e) {
        say(e.message, "error");
      } finally {
        busy = false;
        render();
        box.focus();
      }
    }

    async function save() {
      try {
        const r = await api("/api/chat/save", { turns, seconds: secondsSince(started) });
        say(`saved ${r.dialog_id} (${r.exchanges} exchange${r.exchanges === 1 ? "" : "s"}) to ${r.path} — the next round (${r.next_round}) reads it`, "ok");
        turns = [];
        started = now();
        render();
      } catch (e) {
        say(e.message, "error");
      }
    }

    $("#chat-form").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey) { ev.preventDefault(); send(); }
    });
    $("#save").addEventListener("click", save);
    $("#discard").addEventListener("click", () => { turns = []; started = now(); render(); box.focus(); });
    document.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "s") { ev.preventDefault(); save(); }
    });
  }

  // ------------------------------------------------------------------ Distill (stage 2)
  function distillPage() {
    const cards = $$("article.summary");
    const shown = new Map();  // card → when it first came into view
    const loaded = now();
    const seen = new IntersectionObserver((entries) => {
      for (const e of entries) if (e.isIntersecting && !shown.has(e.target)) shown.set(e.target, now());
    });
    cards.forEach((c) => seen.observe(c));

    function renumber(listBox) {
      const noun = $(".add", listBox).dataset.noun;
      $$("li", listBox).forEach((li, i) => {
        $("input", li).setAttribute("aria-label", `${noun} ${i + 1}`);
        $(".del", li).setAttribute("aria-label", `delete ${noun} ${i + 1}`);
      });
    }

    function addItem(listBox) {
      const li = el("li");
      const input = el("input", { type: "text" });
      const del = el("button", { type: "button", class: "del", title: "delete" }, "×");
      li.append(input, del);
      $("ol", listBox).append(li);
      renumber(listBox);
      input.focus();
    }

    function values(card, field) {
      return $$(`.edit-list[data-field="${field}"] input`, card).map((i) => i.value);
    }

    async function save(card) {
      const round = card.dataset.round === "" ? null : Number(card.dataset.round);
      const body = { dialog_id: card.dataset.dialogId, round, base: card.dataset.base,
                     facts: values(card, "facts"), logic: values(card, "logic"),
                     persona: { voice: $('input[name="voice"]', card).value, constraints: values(card, "constraints") },
                     seconds: secondsSince(shown.get(card) ?? loaded) };
      try {
        const r = await api("/api/summaries", body);
        card.dataset.base = r.base;
        const badge = $(".badge.person", card);
        badge.textContent = `edited by a person · ${r.record.at.slice(0, 16).replace("T", " ")}`;
        badge.hidden = false;
        shown.set(card, now());
        say(`saved: your version of ${body.dialog_id} is now its summary (studio/summaries.jsonl)`, "ok");
      } catch (e) {
        say(e.message, "error");
      }
    }

    document.addEventListener("click", (ev) => {
      const add = ev.target.closest(".add");
      if (add) { addItem(add.closest(".edit-list")); return; }
      const del = ev.target.closest(".del");
      if (del) {
        const listBox = del.closest(".edit-list"), li = del.closest("li");
        const next = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        renumber(listBox);
        (next ? $("input", next) : $(".add", listBox)).focus();
      }
    });
    cards.forEach((card) => $("form", card).addEventListener("submit", (ev) => { ev.preventDefault(); save(card); }));
  }

  // ------------------------------------------------------------------ Review queue (stage 5)
  // The queue: one item shown at a time; its three rubric dimensions, its pair choice.
  function reviewQueue(items, queue) {
    const q = { current: 0, shownAt: now() };
    const item = () => items[q.current];

    q.show = (i) => {
      q.current = Math.min(Math.max(i, 0), items.length - 1);
      items.forEach((it, k) => { it.hidden = k !== q.current; });
      queue.forEach((b, k) => b.classList.toggle("current", k === q.current));
      queue[q.current].scrollIntoView({ block: "nearest" });
      q.shownAt = now();
      $(".dim", item()).focus();
    };
    q.setDim = (dim, value) => {
      dim.dataset.value = String(value);
      $$("button", dim).forEach((b) => b.setAttribute("aria-checked", String(Number(b.dataset.value) === value)));
    };
    q.dimValue = (dim) => {
      if (dim.dataset.value) return Number(dim.dataset.value);
      const checked = $('button[aria-checked="true"]', dim);
      return checked ? Number(checked.dataset.value) : null;
    };
    q.moveDim = (dim, step) => {
      const dims = $$(".dim", item());
      const next = dims[dims.indexOf(dim) + step];
      (next || (step > 0 ? $(".save-scores", item()) : dim)).focus();
    };
    q.firstOpenDim = () => $$(".dim", item()).find((d) => q.dimValue(d) === null) || $(".dim", item());

    q.saveScores = async () => {
      const it = item(), k = q.current, scores = {};
      for (const dim of $$(".dim", it)) { const v = q.dimValue(dim); if (v !== null) scores[dim.dataset.dim] = v; }
      const body = { round: Number(it.dataset.round), prompt_id: it.dataset.promptId,
                     candidate_id: it.dataset.candidateId, scores, seconds: secondsSince(q.shownAt) };
      try {
        await api("/api/scores", body);
      } catch (e) {
        say(e.message, "error");
        return;
      }
      $(".last", it).textContent = Object.entries(scores).map(([d, v]) => `${d} ${v}`).join(" · ");
      $(".labelled", it).hidden = false;
      queue[k].classList.add("done");
      $(".mark", queue[k]).textContent = "✓";
      say(`saved your scores of ${body.candidate_id} (studio/scores.jsonl)`, "ok");
      if (k < items.length - 1) q.show(k + 1); else q.shownAt = now();
    };

    q.choose = async (side) => {
      const it = item(), other = $("select.other", it);
      if (!other) { say("this prompt has no other candidate on disk to compare with", "error"); return; }
      const mine = it.dataset.candidateId;
      const [chosen, rejected] = side === "a" ? [mine, other.value] : [other.value, mine];
      try {
        await api("/api/pairs", { round: Number(it.dataset.round), prompt_id: it.dataset.promptId, chosen, rejected,
                                  seconds: secondsSince(q.shownAt) });
      } catch (e) {
        say(e.message, "error");
        return;
      }
      $(".last-pair", it).textContent = `${chosen} over ${rejected}`;
      $(".picked", it).hidden = false;
      q.shownAt = now();
      say(`saved: ${chosen} is better than ${rejected} (studio/pairs.jsonl)`, "ok");
    };
    q.showOther = (id) => $$(".other-text", item()).forEach((p) => { p.hidden = p.dataset.candidateId !== id; });
    return q;
  }

  // Keys: 1-5 score the focused (or first open) dimension, ↑/↓ move, ←/→ lower/raise, Enter save,
  // a/b pick the better answer, j/k next/previous item.
  function reviewKey(q, ev) {
    if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const dim = ev.target instanceof Element ? ev.target.closest(".dim") : null;
    if (ev.key === "j" || ev.key === "k") {
      q.show(q.current + (ev.key === "j" ? 1 : -1));
    } else if (/^[1-5]$/.test(ev.key)) {
      const target = dim || q.firstOpenDim();
      q.setDim(target, Number(ev.key));
      q.moveDim(target, 1);
      ev.preventDefault();
    } else if (dim && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      q.moveDim(dim, ev.key === "ArrowDown" ? 1 : -1);
      ev.preventDefault();
    } else if (dim && (ev.key === "ArrowLeft" || ev.key === "ArrowRight")) {
      const v = (q.dimValue(dim) ?? 3) + (ev.key === "ArrowRight" ? 1 : -1);
      q.setDim(dim, Math.min(5, Math.max(1, v)));
      ev.preventDefault();
    } else if (ev.key === "Enter" && !(ev.target instanceof HTMLButtonElement)) {
      q.saveScores();
      ev.preventDefault();
    } else if (ev.key === "a" || ev.key === "b") {
      q.choose(ev.key);
    }
  }

  function reviewPage() {
    const items = $$("article.item"), queue = $$(".queue button");
    if (!items.length) return;
    const q = reviewQueue(items, queue);
    document.addEventListener("click", (ev) => {
      const entry = ev.target.closest(".queue button");
      if (entry) { q.show(Number(entry.dataset.index)); return; }
      const b = ev.target.closest(".dim button");
      if (b) { const dim = b.closest(".dim"); q.setDim(dim, Number(b.dataset.value)); dim.focus(); return; }
      if (ev.target.closest(".save-scores")) { q.saveScores(); return; }
      const c = ev.target.closest(".choose");
      if (c) q.choose(c.dataset.side);
    });
    document.addEventListener("change", (ev) => { if (ev.target.matches("select.other")) q.showOther(ev.target.value); });
    document.addEventListener("keydown", (ev) => reviewKey(q, ev));
    const firstOpen = queue.findIndex((b) => !b.classList.contains("done"));
    q.show(firstOpen < 0 ? 0 : firstOpen);
  }

  // ------------------------------------------------------------------ Arena
  function renderElo(elo) {
    const table = el("table", { class: "elo", id: "elo" });
    const prior = elo.prior ? ` · someone won every match: ${elo.prior} virtual ties per pair keep the ratings finite` : "";
    table.append(el("caption", {}, `${elo.votes} vote${elo.votes === 1 ? "" : "s"}${prior}`));
    const head = el("tr");
    ["model", "ELO", "95 % interval", "wins", "losses", "ties"].forEach((h) => head.append(el("th", {}, h)));
    const thead = el("thead"), tbody = el("tbody");
    thead.append(head);
    for (const r of elo.rows) {
      const tr = el("tr");
      tr.append(el("td", {}, r.model), el("td", { class: "num" }, r.rating.toFixed(0)),
                el("td", { class: "num" }, `${r.low.toFixed(0)} – ${r.high.toFixed(0)}`),
                el("td", { class: "num" }, r.wins), el("td", { class: "num" }, r.losses), el("td", { class: "num" }, r.ties));
      tbody.append(tr);
    }
    table.append(thead, tbody);
    $("#elo-box").replaceChildren(table);
  }

  function arenaPage() {
    const form = $("#arena-form");
    if (!form) return;
    let match = null, voted = false, shownAt = now();

    async function next() {
      try {
        match = await api("/api/arena/match", { a: $("#model-a").value, b: $("#model-b").value });
      } catch (e) {
        say(e.message, "error");
        return;
      }
      voted = false;
      $("#match-prompt").textContent = match.prompt;
      $("#match-left").textContent = match.left;
      $("#match-right").textContent = match.right;
      $("#who-left").textContent = "";
      $("#who-right").textContent = "";
      $("#revealed").hidden = true;
      $("#match").hidden = false;
      if (document.activeElement instanceof HTMLElement) document.activeElement.blur();  // arrows vote, not scroll a select
      shownAt = now();
    }

    async function vote(winner) {
      if (!match || voted) return;
      try {
        const r = await api("/api/arena/vote", { match_id: match.match_id, winner, seconds: secondsSince(shownAt) });
        voted = true;
        $("#who-left").textContent = `· ${r.record.left}`;
        $("#who-right").textContent = `· ${r.record.right}`;
        const verdict = winner === "tie" ? "a tie" : `${r.record[winner]} won`;
        $("#revealed").textContent = `left was ${r.record.left}, right was ${r.record.right}: ${verdict}. Press n for the next match.`;
        $("#revealed").hidden = false;
        renderElo(r.elo);
      } catch (e) {
        say(e.message, "error");
      }
    }

    form.addEventListener("submit", (ev) => { ev.preventDefault(); next(); });
    $$(".votes button").forEach((b) => b.addEventListener("click", () => vote(b.dataset.winner)));
    document.addEventListener("keydown", (ev) => {
      if (typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const keys = { ArrowLeft: "left", ArrowRight: "right", ArrowDown: "tie" };
      if (keys[ev.key]) { ev.preventDefault(); vote(keys[ev.key]); }
      else if (ev.key === "n" || (ev.key === "Enter" && voted && !(ev.target instanceof HTMLButtonElement))) { ev.preventDefault(); next(); }
    });
    next();
  }

  const pages = { chat: chatPage, distill: distillPage, review: reviewPage, arena: arenaPage };
  const start = pages[document.body.dataset.page];
  if (start) start();
})();
