"""The provider picker: one row per provider with its checkbox, its price for the current settings,
what it will honour (the size it makes, seed, steps), and whether it is ready; sorted by price, the
cheapest usable one marked; quick choices ("Cheapest 3", "All ready", "Clear").

A `gr.HTML` custom component (Gradio 6: html_template + js_on_load): its value is the list of chosen
provider ids, exactly what a CheckboxGroup would hold; its `rows` prop is re-sent by the controls'
update whenever a price can change. Setting `props.value` in the browser fires `change` by itself.
Everything in a row is escaped here: the template inserts the strings as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any

import gradio as gr

from ..quotes import Quote

__all__ = ["Speed", "auto_rows", "build_picker", "build_select", "picker_rows"]

_READY_CLASS = {
    "server key": "ok", "your key": "ok", "your Hugging Face account": "ok", "demo": "demo",
    "not configured": "missing",
}  # fmt: skip
#: "Cheapest 3" picks this many.
QUICK_COUNT = 3

# `value` is whatever the browser holds: anything but a list counts as nothing chosen. `autos` are the
# automatic choices, below the providers. Sorting by speed is the browser's own: a class on the rows
# and each row's place by speed (CSS `order`), kept across re-renders by `sync`.
_TEMPLATE = """<div class="fp-picker">${((chosen) => {
const row = (r) => `
  <label class="fp-row${r.classes}${chosen.includes(r.id) ? " chosen" : ""}" data-provider="${r.id}"
    style="--by-speed: ${r.speed_rank}">
    <input type="checkbox" data-id="${r.id}"${chosen.includes(r.id) ? " checked" : ""}>
    <span class="fp-row-main">
      <span class="fp-row-name"><span class="fp-label">${r.label}</span>${r.badge}</span>
      <span class="fp-honours">${r.honours}</span>${r.speed}${r.why}
    </span>
    <span class="fp-cost" title="${r.title}">
      <span class="fp-amount">${r.cost}</span><span class="fp-basis">${r.basis}</span>
    </span>
    <span class="fp-ready ${r.ready_class}" title="${r.ready_title}">${r.ready}</span>
  </label>`;
return `
<div class="fp-picker-head">
  <span class="fp-picker-title">Providers
    <span class="fp-chosen-count">${chosen.length} of ${rows.length} chosen</span></span>
  <span class="fp-quick" role="group" aria-label="Quick choices">
    <button type="button" class="fp-pick" data-pick="cheapest">Cheapest ${quick}</button>
    <button type="button" class="fp-pick" data-pick="ready">All ready</button>
    <button type="button" class="fp-pick" data-pick="none">Clear</button>
  </span>
</div>
<div class="fp-sort" role="group" aria-label="Sort providers by">Sort by
  <button type="button" class="fp-sort-by" data-sort="price">price</button>
  <button type="button" class="fp-sort-by" data-sort="speed">speed</button>
  <span class="fp-sort-note">speed: this app's recent runs, click to saved image</span>
</div>
<div class="fp-rows" role="group" aria-label="Providers">${rows.map(row).join("")}</div>
<div class="fp-autos" role="group" aria-label="Or let the app choose">
  <span class="fp-autos-title">Or let the app choose: it tries the next one if a provider refuses before
    billing</span>${autos.map(row).join("")}
</div>`;
})(Array.isArray(value) ? value : [])}</div>"""

_JS = """
const ids = () => [...(props.rows || []), ...(props.autos || [])].map((row) => row.id);
const choose = (chosen) => {
  const keep = new Set(chosen);
  props.value = ids().filter((id) => keep.has(id));  // Gradio fires `change` for this
  setTimeout(sync, 0);  // after the re-render, whose watch may run before the DOM is patched
};
// The template re-renders by patching the DOM, which sets the `checked` attribute, not the state of
// a box the person has already clicked: set that state from the value after each render.
let bySpeed = false;
const sync = () => {
  const chosen = new Set(Array.isArray(props.value) ? props.value : []);
  element.querySelectorAll("input[data-id]").forEach((box) => { box.checked = chosen.has(box.dataset.id); });
  element.querySelector(".fp-rows")?.classList.toggle("by-speed", bySpeed);
  element.querySelectorAll("button[data-sort]").forEach((button) => {
    const on = (button.dataset.sort === "speed") === bySpeed;
    button.classList.toggle("on", on);
    button.setAttribute("aria-pressed", String(on));
  });
};
// Every prop: a prop's name in quotes here would make Gradio take it for a custom event name.
watch(Object.keys(props), sync);
element.addEventListener("change", (event) => {
  const box = event.target.closest("input[data-id]");
  if (!box) return;
  const chosen = new Set(Array.isArray(props.value) ? props.value : []);
  if (box.checked) chosen.add(box.dataset.id); else chosen.delete(box.dataset.id);
  choose(chosen);
});
element.addEventListener("click", (event) => {
  const order = event.target.closest("button[data-sort]");
  if (order) { bySpeed = order.dataset.sort === "speed"; sync(); return; }  // nothing is sent
  const button = event.target.closest("button[data-pick]");
  if (!button) return;
  const usable = (props.rows || []).filter((row) => row.usable).map((row) => row.id);
  const picks = {cheapest: usable.slice(0, props.quick), ready: usable, none: []};
  choose(picks[button.dataset.pick] || []);
});
sync();  // the sort buttons' state, at load
"""


def build_picker(chosen: list[str], rows: list[dict[str, Any]], autos: list[dict[str, Any]]) -> gr.HTML:
    return gr.HTML(
        chosen,
        html_template=_TEMPLATE,
        js_on_load=_JS,
        elem_id="providers",
        rows=rows,
        autos=autos,
        quick=QUICK_COUNT,
        label="Providers",
    )


#: A provider's recent speed for the request's size class: one line, and its p50 for sorting.
Speed = tuple[str, float | None]


def picker_rows(quotes: Sequence[Quote], speeds: Mapping[str, Speed] | None = None) -> list[dict[str, Any]]:
    """The rows, cheapest usable first; providers that cannot run this request last. `speeds`: each
    provider's line of statistics (stats.py), shown under its name and used to sort by speed."""
    speeds = speeds or {}
    ordered = sorted(quotes, key=lambda q: (not q.usable, q.cost is None, q.cost or Decimal(0), q.label))
    rows = [_row(q, speeds.get(q.provider)) for q in ordered]
    # Sorted by speed: usable first, then by p50 (unmeasured last), then by price (their order here).
    by_speed = sorted(
        range(len(rows)),
        key=lambda i: (not ordered[i].usable, rows[i]["p50"] is None, rows[i]["p50"] or 0.0, i),
    )
    for rank, i in enumerate(by_speed):
        rows[i]["speed_rank"] = rank
    return rows


def auto_rows(previews: Sequence[Quote]) -> list[dict[str, Any]]:
    """The automatic choices (route.preview): what each would pick now, or why it cannot."""
    rows = []
    for q in previews:
        row = _row(q, None) | {"speed_rank": 0}
        if q.problems:  # the route's own sentence says what to do
            row["why"] = f'<span class="fp-why">{escape(q.problems[0])}</span>'
        rows.append(row)
    return rows


def _row(q: Quote, speed: Speed | None) -> dict[str, Any]:
    rule = q.rule
    title = f"{rule.note} Source: {rule.source}" if rule is not None else "No price known."
    ready, ready_title = str(q.readiness), ""
    if q.readiness == "not configured":
        ready = "needs a key"
        ready_title = f"Set {', '.join(q.missing)} on the server, or paste your own key below."
    elif q.readiness == "your Hugging Face account":
        ready = "your HF account"
        ready_title = (
            "Ready with your Hugging Face account: runs through Hugging Face, billed to your Hugging Face "
            "credits, not to this Space."
        )
    why = f"Cannot take these settings: {'; '.join(q.problems)}." if q.problems else ""
    return {
        "id": escape(q.provider, quote=True),
        "classes": (" cheapest" if q.cheapest else "") + ("" if q.usable else " blocked"),
        "label": escape(q.label),
        "badge": '<span class="fp-badge">cheapest</span>' if q.cheapest else "",
        "cost": escape(q.cost_text),
        "basis": escape(rule.describe() if rule is not None else "no price known"),
        "title": escape(title, quote=True),
        "honours": _honours_html(q),
        "why": f'<span class="fp-why">{escape(why)}</span>' if why else "",
        "speed": f'<span class="fp-speed">{escape(speed[0])}</span>' if speed else "",
        "p50": speed[1] if speed else None,
        "ready": escape(ready),
        "ready_class": _READY_CLASS[q.readiness],
        "ready_title": escape(ready_title, quote=True),
        "usable": q.usable,
    }


def _honours_html(q: Quote) -> str:
    """What this provider will do with the request: the size it makes, seed and steps."""
    width, height = q.output_size
    parts = []
    if width and height:
        parts.append(("changed", f"makes {width} × {height}") if q.resized else ("", f"{width} × {height}"))
    parts.append(("", "seed") if q.seed else ("no", "no seed"))
    parts.append(("", "steps") if q.steps else ("no", "no steps"))
    return "".join(
        f'<span class="fp-h{" " + css if css else ""}">{escape(text)}</span>' for css, text in parts
    )


# A native <select>: Gradio's Dropdown left its option list on screen when tabbed through (issue 14).
_SELECT_TEMPLATE = """<select class="fp-select" aria-label="${aria}">${options.map((o) =>
  `<option value="${o.value}"${o.value === value ? " selected" : ""}>${o.label}</option>`
).join("")}</select>"""

_SELECT_JS = """
element.addEventListener("change", (event) => {
  const select = event.target.closest("select");
  if (select) props.value = select.value;  // Gradio fires `change` for this
});
"""


def build_select(choices: Sequence[tuple[str, str]], value: str, *, label: str, elem_id: str) -> gr.HTML:
    """A labelled native select whose value is the chosen option's value (escaped here)."""
    options = [{"label": escape(text), "value": escape(key, quote=True)} for text, key in choices]
    return gr.HTML(
        value,
        html_template=_SELECT_TEMPLATE,
        js_on_load=_SELECT_JS,
        elem_id=elem_id,
        options=options,
        aria=escape(label, quote=True),
    )
