() => {
  // On a phone the results are below the controls: follow the run there.
  document.addEventListener("click", (event) => {
    if (!(event.target instanceof Element) || !event.target.closest("#generate")) return;
    if (window.innerWidth > 720) return;
    setTimeout(() => document.querySelector("#output")?.scrollIntoView({behavior: "smooth"}), 150);
  });
  // Ctrl/Cmd+Enter in the prompt clicks Generate. Plain Enter keeps making a new line, and the prompt
  // has no submit listener, so no key alone can start a paid run by accident. Capture phase, on the
  // document: the app renders after this runs and re-renders components at will.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || event.isComposing) return;
    if (!(event.target instanceof Element) || !event.target.closest("#prompt")) return;
    event.preventDefault();
    event.stopPropagation();
    const button = document.querySelector("#generate");
    if (button && !button.disabled) button.click();
  }, true);

  // The viewer (history details): arrows and Escape page and close it, a swipe on the image pages
  // it. Never while typing: the arrows move the caret in the prompt and the search box.
  const viewerOpen = () => {
    const panel = document.querySelector("#details");
    return panel !== null && panel.offsetParent !== null;
  };
  const press = (id) => {
    const button = document.querySelector(id);
    if (button && !button.disabled) button.click();
  };
  document.addEventListener("keydown", (event) => {
    if (!viewerOpen() || event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target instanceof Element && target.closest("input, textarea, select, [contenteditable]")) return;
    const id = {ArrowLeft: "#viewer-prev", ArrowRight: "#viewer-next", Escape: "#viewer-close"}[event.key];
    if (!id) return;
    event.preventDefault();
    press(id);
  });
  let touch = null;
  document.addEventListener("touchstart", (event) => {
    const inImage = event.target instanceof Element && event.target.closest("#details-image");
    touch = inImage && event.touches.length === 1 ? event.touches[0] : null;
  }, {passive: true});
  document.addEventListener("touchend", (event) => {
    if (!touch || event.changedTouches.length !== 1) return;
    const dx = event.changedTouches[0].clientX - touch.clientX;
    const dy = event.changedTouches[0].clientY - touch.clientY;
    touch = null;
    if (Math.abs(dx) > 50 && Math.abs(dx) > 2 * Math.abs(dy)) press(dx < 0 ? "#viewer-next" : "#viewer-prev");
  }, {passive: true});

  // Copy prompt / copy seed: the text shown in the viewer. navigator.clipboard needs a secure page
  // (https or localhost); on a LAN address the old selection copy still works.
  const copyText = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      const copied = document.execCommand("copy");
      area.remove();
      return copied;
    }
  };
  document.addEventListener("click", async (event) => {
    const button = event.target instanceof Element && event.target.closest("#copy-prompt, #copy-seed");
    if (!button) return;
    const details = document.querySelector("#details-text .fp-details");
    const text = button.id === "copy-prompt" ? details?.querySelector(".fp-prompt")?.textContent
      : details?.dataset.seed;
    if (!text) return;
    const label = button.textContent;
    button.textContent = (await copyText(text)) ? "Copied ✓" : "Copy failed";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
}
