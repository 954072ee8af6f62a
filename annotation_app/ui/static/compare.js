/* The Compare tab's critique switcher and keyboard (no dependencies; works on Gradio's rendered DOM).
 *
 * One critique is shown at a time: a <style> element this script owns hides the other slots, so no
 * Gradio-owned attribute is touched and a re-render cannot undo it. The navigator (#compare-nav, HTML
 * rendered by the server) carries data-task: when it changes, a new task opened, and critique 1's first
 * question gets the focus.
 *
 * Keys, outside text fields: 1-7 set the focused score; ←/→ lower/raise it; Enter or ↓ go to the next
 * question (from a critique's last question to the next critique's first), ↑ to the previous one; Space
 * toggles a flag (native). In the rationale, Tab goes on to the next critique. Ctrl+Enter (⌘+Enter)
 * submits from anywhere in the task. A score is set by clicking its radio input, which dispatches the
 * input and change events Gradio listens to, exactly as a mouse click would.
 */
(() => {
  "use strict";

  const shown = document.createElement("style");
  let current = 0;
  let lastTask = null;

  const panel = () => document.getElementById("compare-task");
  const nav = () => document.querySelector("#compare-nav .cmp-nav");
  const count = () => Number(nav()?.dataset.count || 0);
  const slotOf = (el) => el?.closest?.("#compare-task .cmp-slot");
  const slotIndex = (slot) => Number(slot.id.replace("critique-", ""));
  const questions = (i) => [...document.querySelectorAll(`#critique-${i} .cmp-q`)];
  const isScore = (q) => q.classList.contains("cmp-score");

  function markNav() {
    nav()?.querySelectorAll("[data-cmp-goto]").forEach((button) => {
      const here = Number(button.dataset.cmpGoto) === current;
      if (here !== (button.getAttribute("aria-current") === "true")) {
        button.setAttribute("aria-current", here ? "true" : "false");
      }
    });
  }

  function show(i) {
    const n = count();
    current = Math.max(0, Math.min(i, Math.max(n - 1, 0)));
    if (!shown.isConnected) document.head.appendChild(shown);
    shown.textContent = `#compare-task .cmp-slot:not(#critique-${current}) { display: none !important; }`;
    markNav();
  }

  function focusQuestion(q) {
    if (!q) return false;
    const target =
      q.querySelector("input[type=radio]:checked") ||
      q.querySelector("input, textarea") ||
      null;
    if (!target) return false;
    target.focus({ preventScroll: true });
    target.scrollIntoView({ block: "nearest" });
    return true;
  }

  function jump(i, field) {
    show(i);
    const q = field ? document.getElementById(`critique-${current}-${field}`) : questions(current)[0];
    focusQuestion(q);
  }

  function move(q, step) {
    const i = slotIndex(slotOf(q));
    const list = questions(i);
    const at = list.indexOf(q) + step;
    if (at >= 0 && at < list.length) return focusQuestion(list[at]);
    if (step > 0 && i + 1 < count()) return jump(i + 1);
    if (step < 0 && i > 0) {
      show(i - 1);
      return focusQuestion(questions(i - 1).at(-1));
    }
    if (step > 0) document.querySelector("#compare-submit")?.focus();
  }

  function setScore(q, value) {
    const radio = q.querySelector(`input[type=radio][value="${value}"]`);
    if (!radio) return;
    if (!radio.checked) radio.click(); // a real click: Gradio sees input + change
    radio.focus({ preventScroll: true });
  }

  function stepScore(q, delta) {
    const radios = [...q.querySelectorAll("input[type=radio]")];
    if (!radios.length) return;
    const at = radios.findIndex((r) => r.checked);
    const next = at < 0 ? (delta > 0 ? 0 : radios.length - 1) : Math.max(0, Math.min(at + delta, radios.length - 1));
    setScore(q, radios[next].value);
  }

  function submit() {
    document.querySelector("#compare-submit")?.click();
  }

  function handled(e) {
    // Ours alone: Gradio's own key handlers (its checkbox toggles on Enter) must not see it too.
    e.preventDefault();
    e.stopPropagation();
  }

  function onKey(e) {
    const task = panel();
    if (!task || !task.offsetParent) return; // the Compare tab is not showing a task
    const inTask = task.contains(e.target) || e.target === document.body;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      if (inTask) {
        handled(e);
        submit();
      }
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const slot = slotOf(e.target);
    const q = slot && e.target.closest(".cmp-q");
    if (!q) return;
    if (q.classList.contains("cmp-rationale")) {
      if (e.key === "Tab" && !e.shiftKey) {
        handled(e);
        move(q, 1);
      }
      return; // every other key types
    }
    if (isScore(q) && /^[0-9]$/.test(e.key)) {
      handled(e);
      setScore(q, e.key);
    } else if (isScore(q) && (e.key === "ArrowLeft" || e.key === "ArrowRight")) {
      handled(e);
      stepScore(q, e.key === "ArrowLeft" ? -1 : 1);
    } else if (e.key === "Enter" || e.key === "ArrowDown") {
      handled(e);
      move(q, 1);
    } else if (e.key === "ArrowUp") {
      handled(e);
      move(q, -1);
    }
  }

  function onClick(e) {
    const button = e.target.closest?.("#compare-task [data-cmp-goto], #compare-task [data-cmp-step]");
    if (!button) return;
    e.preventDefault();
    if (button.dataset.cmpStep) return jump(current + Number(button.dataset.cmpStep));
    jump(Number(button.dataset.cmpGoto), button.dataset.cmpField);
  }

  function onFocus(e) {
    // A click into another critique's control (a jump by mouse): keep the navigator in step.
    const slot = slotOf(e.target);
    if (slot && slotIndex(slot) !== current) show(slotIndex(slot));
  }

  function oneTabStopPerScore() {
    // Gradio names each radio of a score apart, so Tab would stop at all seven: keep one stop, the
    // chosen score (or the first), as a native radio group has.
    document.querySelectorAll("#compare-task .cmp-score").forEach((q) => {
      const radios = [...q.querySelectorAll("input[type=radio]")];
      const stop = radios.find((r) => r.checked) || radios[0];
      radios.forEach((r) => {
        const index = r === stop ? 0 : -1;
        if (r.tabIndex !== index) r.tabIndex = index;
      });
    });
  }

  function sync() {
    const task = nav()?.dataset.task ?? null;
    if (task !== lastTask) {
      lastTask = task;
      if (task !== null) openTask(task);
    }
    markNav();
    oneTabStopPerScore();
  }

  function showBug() {
    // A long file scrolls in its own box: bring the first bug line into it.
    const code = document.querySelector("#compare-code .cmp-code");
    const bug = code?.querySelector(".cmp-bug");
    if (!code || !bug) return;
    const offset = bug.getBoundingClientRect().top - code.getBoundingClientRect().top + code.scrollTop;
    code.scrollTop = Math.max(0, offset - code.clientHeight / 3);
  }

  function openTask(task, tries = 0) {
    // The slots mount with the navigator; wait for critique 1's first question if it is not there yet.
    show(0);
    if (tries === 0) showBug();
    if (lastTask === task && !focusQuestion(questions(0)[0]) && tries < 50) {
      setTimeout(() => openTask(task, tries + 1), 100);
    }
  }

  let pending = false;
  const observer = new MutationObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      sync();
    });
  });

  function start() {
    show(0);
    observer.observe(document.body, { childList: true, subtree: true });
    sync();
  }

  document.addEventListener("keydown", onKey, true);
  document.addEventListener("click", onClick, true);
  document.addEventListener("focusin", onFocus, true);
  document.addEventListener("change", oneTabStopPerScore, true);
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
