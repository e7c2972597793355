"""The provider picker's rows: sorted by price, everything escaped, readiness and honours in words."""

from __future__ import annotations

from decimal import Decimal

from flux_playground.pricing import PriceRule
from flux_playground.quotes import Quote
from flux_playground.ui.picker import picker_rows

RULE = PriceRule(basis="per_image", usd=Decimal("0.003"), source="https://example.test/p", note="<b>note</b>")


def make(name: str, cost: str | None, **fields: object) -> Quote:
    values: dict[str, object] = {"readiness": "server key", "output_size": (1024, 1024), **fields}
    return Quote(name, name.upper(), Decimal(cost) if cost else None, RULE, **values)


def test_cheapest_usable_first_unknown_prices_then_those_that_cannot_run() -> None:
    quotes = [
        make("dear", "0.01"),
        make("blocked", "0.0001", problems=("steps must be 1–4",)),
        make("unready", "0.0002", readiness="not configured", missing=("UNREADY_KEY",)),
        make("unknown", None),
        make("cheap", "0.001", cheapest=True),
    ]
    assert [row["id"] for row in picker_rows(quotes)] == ["cheap", "dear", "unknown", "blocked", "unready"]


def test_a_row_says_what_stops_it_and_what_it_will_honour() -> None:
    rows = {
        row["id"]: row
        for row in picker_rows(
            [
                make("blocked", "0.001", problems=("steps must be 1–4",)),
                make("unready", "0.001", readiness="not configured", missing=("A_KEY", "AN_ACCOUNT_ID")),
                make("fixed", "0.001", output_size=(1024, 1024), resized=True, seed=False),
            ]
        )
    }
    assert (
        rows["blocked"]["why"] == '<span class="fp-why">Cannot take these settings: steps must be 1–4.</span>'
    )
    assert not rows["blocked"]["usable"] and "blocked" in rows["blocked"]["classes"]
    assert rows["unready"]["ready"] == "needs a key" and rows["unready"]["ready_class"] == "missing"
    assert "A_KEY, AN_ACCOUNT_ID" in rows["unready"]["ready_title"]
    assert rows["fixed"]["honours"] == (
        '<span class="fp-h changed">makes 1024 × 1024</span><span class="fp-h no">no seed</span>'
        '<span class="fp-h">steps</span>'
    )


def test_every_text_is_escaped() -> None:
    hostile = Quote('x"><img src=x onerror=alert(1)>', "<script>", Decimal("0.001"), RULE, "server key")
    (row,) = picker_rows([hostile])
    assert "<" not in row["label"] + row["id"] + row["title"] and '"' not in row["id"] + row["title"]
    assert "&lt;b&gt;note&lt;/b&gt;" in row["title"]


def test_speed_is_shown_and_ranks_usable_measured_providers_first() -> None:
    quotes = [
        make("cheap", "0.001"),
        make("mid", "0.002"),
        make("dear", "0.003"),
        make("blocked", "0.0001", problems=("steps must be 1–4",)),
    ]
    speeds = {
        "cheap": ("p50 3.0 s · 100 % ok · 9 runs", 3.0),
        "mid": ("not enough runs yet (2 of 5)", None),
        "dear": ("p50 <1.0 s> · 90 % ok · 20 runs", 1.0),
        "blocked": ("p50 0.5 s · 100 % ok · 8 runs", 0.5),
    }
    rows = {row["id"]: row for row in picker_rows(quotes, speeds)}
    assert {name: row["speed_rank"] for name, row in rows.items()} == {
        "dear": 0, "cheap": 1, "mid": 2, "blocked": 3,
    }  # fmt: skip
    assert rows["dear"]["speed"] == '<span class="fp-speed">p50 &lt;1.0 s&gt; · 90 % ok · 20 runs</span>'
    assert picker_rows(quotes)[0]["speed"] == ""  # no statistics: nothing claimed


def test_the_automatic_choices_say_what_they_would_pick_or_why_not() -> None:
    from flux_playground.models import GenerationRequest
    from flux_playground.route import preview
    from flux_playground.ui.picker import auto_rows

    request = GenerationRequest(prompt="p")
    quotes = [make("cheap", "0.001"), make("dear", "0.003")]
    cheapest, fastest = auto_rows(preview(request, quotes, None))
    assert (cheapest["id"], cheapest["label"], cheapest["cost"]) == (
        "auto",
        "Auto (cheapest): now CHEAP",
        "$0.001",
    )
    assert fastest["id"] == "auto:fastest"  # no statistics yet: the cheapest, and it says so when run
    blocked = auto_rows(preview(request, [make("x", "0.001", readiness="not configured")], None))
    assert "found no provider that can honour this request" in blocked[0]["why"]
    assert "blocked" in blocked[0]["classes"]
