"""The page in headless Chromium (Debian's, via Playwright; never `playwright install`)."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from flux_playground.emulator.server import EmulatorServer
from flux_playground.images import read_png_text
from flux_playground.providers import PROVIDERS

from .appclient import serve
from .conftest import Launched, emulator_settings

pytestmark = pytest.mark.browser

# No sandbox as root, no GPU, and no background traffic on a closed network (Chromium's own flags).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), headless=True, args=ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def server(launched: tuple[Launched, EmulatorServer]) -> Iterator[EmulatorServer]:
    launched[1].clear_faults()
    yield launched[1]
    launched[1].clear_faults()


def screenshot(page: Page, name: str, selector: str | None = None) -> None:
    """Into $UI_SCREENSHOTS when set (docs/screenshots/ holds the ones looked at)."""
    folder = os.environ.get("UI_SCREENSHOTS")
    if not folder:
        return
    page.wait_for_timeout(300)
    target = page.locator(selector) if selector else page
    target.screenshot(path=str(Path(folder) / name))


def open_page(browser: Browser, launched: tuple[Launched, EmulatorServer], width: int = 1280) -> Page:
    """A new person: a fresh browser context has its own localStorage, hence its own history."""
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(launched[0].url)
    # Ready once the history has loaded (the browser id is set by then) and the controls' first
    # update has come back (it prices the Generate button): nothing typed before is overwritten.
    expect(page.locator("#history-count")).to_contain_text("private to")
    expect(page.locator("#generate")).to_have_text(re.compile(r"^\s*Generate ·"))
    return page


def provider_box(page: Page, name: str) -> Locator:
    return page.locator(f"#providers .fp-row[data-provider={name}] input")


def choose(page: Page, names: list[str]) -> None:
    for name in PROVIDERS:
        box = provider_box(page, name)
        if box.is_checked() != (name in names):
            box.click()
        expect(box).to_be_checked(checked=name in names)


def set_slider(page: Page, elem_id: str, value: int) -> None:
    """Type the value into the slider's number box. A controls update that lands while typing
    re-renders the slider (its label changes) and drops what was not yet committed: type again."""
    number = page.locator(f"#{elem_id} input[type=number]")
    rng = page.locator(f"#{elem_id} input[type=range]")
    for _ in range(3):
        number.fill(str(value))
        number.press("Enter")
        number.blur()
        try:
            expect(rng).to_have_value(str(value), timeout=3000)
            return
        except AssertionError:
            continue
    expect(rng).to_have_value(str(value))


def open_advanced(page: Page) -> None:
    if not page.locator("#seed input").is_visible():
        page.locator("#advanced").get_by_text("Advanced options").click()
    expect(page.locator("#seed input")).to_be_visible()


def generate(page: Page, prompt: str, providers: list[str]) -> None:
    page.fill("#prompt textarea", prompt)
    choose(page, providers)
    # Unticking the last chosen provider disables Generate until the price for the new choice is
    # back; Ctrl+Enter on a disabled button does nothing, as a click would not.
    expect(page.locator("#generate")).to_be_enabled()
    page.press("#prompt textarea", "Control+Enter")  # the keyboard path is the one people use
    for name in providers:
        expect(page.locator(f"#result-{name} .fp-slot.done, #result-{name} .fp-slot.failed")).to_be_visible()


def test_generate_with_two_providers(browser: Browser, launched: tuple[Launched, EmulatorServer]) -> None:
    page = open_page(browser, launched)
    # Plain Enter in the prompt is a new line, never a paid run.
    page.fill("#prompt textarea", "a red fox")
    page.press("#prompt textarea", "Enter")
    page.wait_for_timeout(400)
    expect(page.locator("#results-empty")).to_be_visible()
    assert page.locator("#prompt textarea").input_value() == "a red fox\n"

    generate(page, "a red fox in the snow", ["deepinfra", "segmind"])
    for name in ("deepinfra", "segmind"):
        column = page.locator(f"#result-{name}")
        expect(column.locator(".fp-images img")).to_have_count(1)
        expect(column.locator(".fp-caption")).to_contain_text(
            re.compile(r"seed \d+ · [\d.]+\s+s · est\. (≈\s)?\$")
        )
        assert ".png" in (column.locator(".fp-images img").get_attribute("src") or "")
    expect(page.locator("#result-atlascloud")).to_be_hidden()
    expect(page.locator("#results-empty")).to_be_hidden()
    open_advanced(page)
    seed = page.locator("#seed input").input_value()
    expect(page.locator("#result-segmind .fp-caption")).to_contain_text(f"seed {seed} ")
    expect(page.locator("#history button.thumbnail-item")).to_have_count(2)
    page.screenshot(path=os.environ.get("UI_SCREENSHOT", "/tmp/ui-test.png"), full_page=True)
    page.context.close()


def test_price_table_follows_the_size(browser: Browser, launched: tuple[Launched, EmulatorServer]) -> None:
    page = open_page(browser, launched)
    prices = page.locator("#providers")
    # With real keys only the cheapest provider is chosen at first: a first click never bills several.
    expect(page.locator("#providers input:checked")).to_have_count(1)
    expect(prices.locator(".fp-row.cheapest input")).to_be_checked()
    choose(page, ["deepinfra"])
    expect(prices.locator(".fp-row[data-provider=deepinfra] .fp-amount")).to_have_text("$0.002")
    expect(page.locator("#generate")).to_have_text("Generate · ≈ $0.002")

    set_slider(page, "width", 2048)
    expect(prices.locator(".fp-row[data-provider=deepinfra] .fp-amount")).to_have_text("$0.004")
    expect(prices.locator(".fp-row[data-provider=atlascloud]")).to_contain_text("nearest: 1536 × 1024")
    expect(page.locator("#preset input[value=Custom]")).to_be_checked()

    page.locator("#preset label", has_text="16:9").click()
    expect(page.locator("#width input[type=number]")).to_have_value("1344")
    expect(page.locator("#height input[type=number]")).to_have_value("768")
    expect(prices.locator(".fp-row[data-provider=atlascloud]")).not_to_contain_text("Cannot take")
    page.click("#swap")
    expect(page.locator("#width input[type=number]")).to_have_value("768")
    expect(page.locator("#preset input[value='9:16']")).to_be_checked()
    page.context.close()


def test_the_picker_sorts_by_price_and_offers_quick_choices(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    page = open_page(browser, launched)
    rows = page.locator("#providers .fp-rows .fp-row")
    expect(rows).to_have_count(len(PROVIDERS))
    amounts = [float(text.strip("≈ $")) for text in rows.locator(".fp-amount").all_inner_texts()]
    assert amounts == sorted(amounts)  # cheapest first
    expect(rows.first).to_have_class(re.compile(r"\bcheapest\b"))

    page.click("#providers button[data-pick=none]")
    expect(page.locator("#providers input:checked")).to_have_count(0)
    expect(page.locator("#generate")).to_have_text("Choose a provider")
    expect(page.locator("#generate")).to_be_disabled()
    page.click("#providers button[data-pick=cheapest]")
    chosen = min(3, len(PROVIDERS))
    expect(page.locator("#providers input:checked")).to_have_count(chosen)
    for n in range(chosen):
        expect(rows.nth(n).locator("input")).to_be_checked()
    expect(page.locator("#providers .fp-chosen-count")).to_have_text(f"{chosen} of {len(PROVIDERS)} chosen")
    label = page.locator("#generate")
    expect(label).to_have_text(re.compile(r"Generate · ≈ \$[\d.]+$"))
    shown = float(label.inner_text().rsplit("$", 1)[1])
    assert abs(shown - sum(amounts[:chosen])) <= 0.05 * shown  # both rounded to two digits
    page.click("#providers button[data-pick=ready]")
    expect(page.locator("#providers input:checked")).to_have_count(len(PROVIDERS))
    page.context.close()


def test_generate_counts_only_providers_that_can_run_and_offers_the_nearest_size(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    """Found: at 1000 × 700 every provider was struck through, yet the button said "Generate · ≈
    $0.009676" and the click gave three failed cards; the suggested size could not be taken."""
    page = open_page(browser, launched)
    choose(page, ["atlascloud", "segmind"])
    set_slider(page, "width", 2048)  # Atlas Cloud makes at most 1536
    set_slider(page, "height", 256)  # Segmind at least 512
    button = page.locator("#generate")
    expect(button).to_have_text("None of the chosen providers can run this")
    expect(button).to_be_disabled()
    page.locator("#nearest").click()
    expect(page.locator("#width input[type=number]")).to_have_value("1536")
    expect(page.locator("#height input[type=number]")).to_have_value("512")
    expect(button).to_be_enabled()
    expect(button).to_have_text(re.compile(r"Generate · ≈ \$[\d.]+$"))
    expect(page.locator("#nearest")).to_be_hidden()
    set_slider(page, "width", 2048)  # Segmind can, Atlas Cloud cannot
    expect(button).to_have_text(re.compile(r"\(1 of 2 can run\)$"))
    page.context.close()


def test_the_button_is_busy_while_a_run_goes_and_comes_back_with_its_price(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    page = open_page(browser, launched)
    choose(page, ["deepinfra"])
    page.fill("#prompt textarea", "a slow fox [latency:1.5]")
    label = page.locator("#generate").inner_text()
    page.click("#generate")
    expect(page.locator("#generate")).to_have_text("Generating…")
    expect(page.locator("#generate")).to_be_disabled()
    expect(page.locator("#result-deepinfra .fp-images img")).to_have_count(1)
    expect(page.locator("#generate")).to_have_text(label)
    expect(page.locator("#generate")).to_be_enabled()
    page.context.close()


def test_reuse_settings_from_history_and_reload(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    page = open_page(browser, launched)
    page.locator("#preset label", has_text="3:2").click()
    generate(page, "a lighthouse at dusk", ["segmind"])
    open_advanced(page)
    seed = page.locator("#seed input").input_value()

    # Change everything, then bring it back from the history.
    page.fill("#prompt textarea", "something else")
    page.locator("#preset label", has_text="1:1").click()
    choose(page, ["deepinfra"])
    page.locator("#history button.thumbnail-item").first.click()
    expect(page.locator("#details-text")).to_contain_text("a lighthouse at dusk")
    expect(page.locator("#details-text")).to_contain_text("1216 × 832")
    with page.expect_download() as download:
        page.click("#download")
    saved = Path(download.value.path())
    assert download.value.suggested_filename.endswith(".png")
    assert "a lighthouse at dusk" in read_png_text(saved.read_bytes())["parameters"]  # metadata kept
    page.click("#reuse")
    expect(page.locator("#prompt textarea")).to_have_value("a lighthouse at dusk")
    expect(page.locator("#width input[type=number]")).to_have_value("1216")
    expect(page.locator("#preset input[value='3:2']")).to_be_checked()
    expect(page.locator("#seed input")).to_have_value(seed)
    expect(page.locator("#random-seed input")).not_to_be_checked()
    expect(provider_box(page, "segmind")).to_be_checked()
    expect(provider_box(page, "deepinfra")).not_to_be_checked()

    # The history belongs to this browser and survives a reload...
    page.reload()
    expect(page.locator("#history button.thumbnail-item")).to_have_count(1)
    # ...and another person (another browser profile) does not see it.
    stranger = open_page(browser, launched)
    expect(stranger.locator("#history-count")).to_contain_text("No images yet")
    expect(stranger.locator("#history button.thumbnail-item")).to_have_count(0)
    stranger.context.close()
    page.context.close()


def test_a_failing_provider_shows_its_error_in_its_place(
    browser: Browser, launched: tuple[Launched, EmulatorServer], server: EmulatorServer
) -> None:
    page = open_page(browser, launched)
    server.inject("segmind", "credits")
    generate(page, "a red fox", ["deepinfra", "segmind"])
    expect(page.locator("#result-segmind .fp-error")).to_contain_text("out of credits")
    expect(page.locator("#result-segmind .fp-error")).to_contain_text("Top up at the provider")
    expect(page.locator("#result-deepinfra .fp-images img")).to_have_count(1)
    page.context.close()


def test_stop_ends_the_wait(browser: Browser, launched: tuple[Launched, EmulatorServer]) -> None:
    page = open_page(browser, launched)
    page.fill("#prompt textarea", "a slow fox [latency:5]")
    choose(page, ["deepinfra"])
    page.click("#generate")
    expect(page.locator("#result-deepinfra .fp-skeleton")).to_contain_text(re.compile(r"\d\.\d s"))
    page.click("#stop")
    expect(page.locator("#result-deepinfra .fp-error")).to_contain_text("You stopped waiting")
    expect(page.locator("#stop")).to_be_hidden()
    page.context.close()


def test_narrow_screen_stacks(browser: Browser, launched: tuple[Launched, EmulatorServer]) -> None:
    page = open_page(browser, launched, width=390)
    # Found: on a phone Generate sat at the bottom edge, below nine provider rows. Now: the prompt,
    # then the button, both on the first screen (900 px tall here), the providers after.
    prompt, button = page.locator("#prompt").bounding_box(), page.locator("#generate").bounding_box()
    rows = page.locator("#providers").bounding_box()
    assert prompt and button and rows and prompt["y"] < button["y"] < rows["y"]
    assert button["y"] + button["height"] <= 900
    generate(page, "a red fox", ["deepinfra", "segmind"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    controls, results = page.locator("#controls").bounding_box(), page.locator("#results").bounding_box()
    assert controls and results and results["y"] > controls["y"]  # stacked, not side by side
    page.screenshot(path=os.environ.get("UI_SCREENSHOT_MOBILE", "/tmp/ui-test-mobile.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize("width", [1440, 390])
@pytest.mark.parametrize("count", [1, 3, len(PROVIDERS)])
def test_result_cards_lay_out_for_one_to_every_provider(
    browser: Browser, launched: tuple[Launched, EmulatorServer], count: int, width: int
) -> None:
    """Each card whole, none overlapping another, nothing wider than the screen. Screenshots go to
    $UI_SCREENSHOTS (docs/screenshots/ holds the ones looked at)."""
    page = open_page(browser, launched, width=width)
    names = list(PROVIDERS)[:count]
    generate(page, "a lighthouse at dusk", names)
    for name in names:
        expect(page.locator(f"#result-{name} .fp-images img")).to_have_count(1)
        page.locator(f"#result-{name} .fp-images img").scroll_into_view_if_needed()  # lazy images load
    page.evaluate("window.scrollTo(0, 0)")
    # Measured once every image has its size (a card grows when its image arrives).
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalHeight > 0)"
    )
    page.wait_for_timeout(300)
    folder = os.environ.get("UI_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"results-{count}-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    boxes = [page.locator(f"#result-{name}").bounding_box() for name in names]
    assert all(box is not None and box["width"] >= min(200, width - 40) for box in boxes), boxes
    for n, a in enumerate(boxes):
        for b in boxes[n + 1 :]:
            assert a and b
            apart = a["x"] + a["width"] <= b["x"] + 1 or b["x"] + b["width"] <= a["x"] + 1
            assert apart or a["y"] + a["height"] <= b["y"] + 1 or b["y"] + b["height"] <= a["y"] + 1
    page.context.close()


def test_history_search_counts_reuse_of_a_whole_run_and_undo(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    """Found: "lisbon rainy" found nothing, a search with no match said "No images yet", Reuse
    brought back one provider of a side-by-side run, and Delete was final."""
    page = open_page(browser, launched)
    generate(page, "A red tram in Lisbon, rainy evening", ["deepinfra", "segmind"])
    generate(page, "a fox in the snow", ["deepinfra"])
    count = page.locator("#history-count")
    expect(count).to_contain_text("3 images")
    page.fill("#history-search textarea, #history-search input", "lisbon rainy")
    expect(count).to_contain_text("2 of 3 images match")
    expect(page.locator("#history button.thumbnail-item")).to_have_count(2)
    page.fill("#history-search textarea, #history-search input", "zebra")
    expect(count).to_contain_text("No match in your 3 images")
    expect(page.locator("#history-empty")).to_contain_text("No image matches")

    page.fill("#history-search textarea, #history-search input", "lisb")
    expect(page.locator("#history button.thumbnail-item")).to_have_count(2)
    choose(page, ["fal"])
    page.locator("#history button.thumbnail-item").first.click()
    page.click("#reuse")
    expect(page.locator("#prompt textarea")).to_have_value("A red tram in Lisbon, rainy evening")
    for name in PROVIDERS:
        expect(provider_box(page, name)).to_be_checked(checked=name in ("deepinfra", "segmind"))

    page.locator("#history button.thumbnail-item").first.click()
    page.click("#delete")
    expect(page.locator("#history button.thumbnail-item")).to_have_count(1)
    page.click("#undo")
    expect(page.locator("#history button.thumbnail-item")).to_have_count(2)
    expect(page.locator("#undo")).to_be_hidden()
    page.context.close()


def test_a_history_thumbnail_opens_its_details_in_sight(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    """Found: with 50 images the details opened at y≈1775, below the whole grid, out of sight."""
    page = open_page(browser, launched)
    generate(page, "a lighthouse at dusk", ["deepinfra", "segmind"])
    page.locator("#history button.thumbnail-item").last.click()
    details = page.locator("#details")
    expect(details).to_be_visible()
    expect(page.locator("#details-text")).to_contain_text("a lighthouse at dusk")
    expect(details).to_be_in_viewport()
    grid, panel = page.locator("#history").bounding_box(), details.bounding_box()
    assert grid and panel and panel["y"] < grid["y"]  # above the thumbnails, however many there are
    page.context.close()


def test_the_history_filter_is_a_native_select_that_leaves_nothing_behind(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    """Found: tabbing through the provider filter left a loose "✓ All providers" box on the page."""
    page = open_page(browser, launched)
    generate(page, "a lighthouse at dusk", ["deepinfra", "segmind"])
    page.focus("#history-search textarea, #history-search input")
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.locator("ul.options, [role=listbox]")).to_have_count(0)
    page.select_option("#history-provider select", "segmind")
    expect(page.locator("#history button.thumbnail-item")).to_have_count(1)
    expect(page.locator("#history-count")).to_contain_text("1 of 2 images match")
    page.select_option("#history-provider select", "")
    expect(page.locator("#history button.thumbnail-item")).to_have_count(2)
    page.context.close()


@pytest.mark.parametrize("width", [1440, 390])
def test_a_past_run_reopens_as_it_was_shown(
    browser: Browser, launched: tuple[Launched, EmulatorServer], width: int
) -> None:
    page = open_page(browser, launched, width=width)
    generate(page, "a lighthouse at dusk", ["deepinfra", "segmind"])
    generate(page, "a fox in the snow", ["atlascloud"])
    expect(page.locator("#result-deepinfra")).to_be_hidden()
    page.locator("#history button.thumbnail-item").last.click()  # the oldest: the two-provider run
    page.click("#open-run")
    for name in ("deepinfra", "segmind"):
        card = page.locator(f"#result-{name}")
        expect(card).to_be_visible()
        expect(card.locator(".fp-images img")).to_have_count(1)
        expect(card.locator(".fp-stage")).to_contain_text("from your history")
        expect(card.locator(".fp-caption")).to_contain_text("seed ")
    expect(page.locator("#result-atlascloud")).to_be_hidden()
    page.locator("#output").scroll_into_view_if_needed()
    screenshot(page, f"reopened-run-{width}.png", "#output")
    page.context.close()


def test_the_viewer_pages_copies_and_downloads_under_a_name_that_says_what_it_is(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    """Issue 14's viewer: arrows and buttons page through the history, Escape closes, copy prompt and
    seed, a descriptive file name, and a whole run as one zip."""
    page = open_page(browser, launched, width=1440)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    generate(page, "a lighthouse at dusk", ["deepinfra", "segmind"])
    generate(page, "a fox in the snow", ["atlascloud"])
    # deepinfra $0.002 + segmind ≈$0.0077 + atlascloud $0.003; Segmind reports what it billed.
    expect(page.locator(".fp-today")).to_have_text(
        re.compile(r"Today: ≈ \$0\.013 for 3 results · \$0\.00\d+ billed, as reported for 1 of them")
    )
    page.locator("#history button.thumbnail-item").first.click()  # the newest: the fox
    text, position = page.locator("#details-text"), page.locator("#viewer-position")
    expect(text).to_contain_text("a fox in the snow")
    expect(position).to_have_text("1 of 3")
    expect(page.locator("#viewer-prev")).to_be_disabled()

    page.keyboard.press("ArrowRight")
    expect(text).to_contain_text("a lighthouse at dusk")
    expect(position).to_have_text("2 of 3")
    page.click("#viewer-next")
    expect(position).to_have_text("3 of 3")
    expect(page.locator("#viewer-next")).to_be_disabled()
    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text("2 of 3")
    # Typing in the search box moves the caret, not the viewer.
    page.focus("#history-search textarea, #history-search input")
    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text("2 of 3")
    page.locator("#details-text").click()
    screenshot(page, "viewer-1440.png", "#history-section")
    nav = [page.locator(f"#viewer-{part}").bounding_box() for part in ("prev", "position", "next", "close")]
    assert all(box and abs(box["y"] - nav[0]["y"]) < 12 for box in nav), nav  # type: ignore[index]  # one line

    page.click("#copy-prompt")
    expect(page.locator("#copy-prompt")).to_have_text("Copied ✓")
    assert page.evaluate("navigator.clipboard.readText()") == "a lighthouse at dusk"
    seed = page.locator("#details-text .fp-details").get_attribute("data-seed")
    assert seed and seed.isdigit()
    page.click("#copy-seed")
    expect(page.locator("#copy-seed")).to_have_text("Copied ✓")
    assert page.evaluate("navigator.clipboard.readText()") == seed

    with page.expect_download() as download:
        page.click("#download")
    name = download.value.suggested_filename
    pattern = rf"flux-\d{{8}}-\d{{4}}-(deepinfra|segmind)-seed{seed}-a-lighthouse-at-dusk\.png"
    assert re.fullmatch(pattern, name), name

    with page.expect_download() as zipped:
        page.click("#zip-run")
    assert zipped.value.suggested_filename.endswith("-a-lighthouse-at-dusk-run.zip")
    with zipfile.ZipFile(zipped.value.path()) as archive:
        names = archive.namelist()
    assert len(names) == 2 and {n.split("-")[3] for n in names} == {"deepinfra", "segmind"}

    page.keyboard.press("Escape")
    expect(page.locator("#details")).to_be_hidden()
    page.context.close()


def test_a_swipe_on_the_viewer_image_pages_on_a_phone(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(launched[0].url)
    expect(page.locator("#history-count")).to_contain_text("private to")
    generate(page, "a lighthouse at dusk", ["deepinfra", "segmind"])
    page.locator("#history button.thumbnail-item").first.click()
    position = page.locator("#viewer-position")
    expect(position).to_have_text("1 of 2")
    box = page.locator("#details-image").bounding_box()
    assert box
    y, x0, x1 = box["y"] + box["height"] / 2, box["x"] + box["width"] * 0.8, box["x"] + box["width"] * 0.2
    page.evaluate(
        """([x0, x1, y]) => {
          const target = document.querySelector('#details-image img');
          const touch = (x) => new Touch({identifier: 1, target, clientX: x, clientY: y});
          target.dispatchEvent(new TouchEvent('touchstart', {touches: [touch(x0)], bubbles: true}));
          target.dispatchEvent(new TouchEvent('touchend', {changedTouches: [touch(x1)], bubbles: true}));
        }""",
        [x0, x1, y],
    )
    expect(position).to_have_text("2 of 2")
    page.locator("#details").scroll_into_view_if_needed()
    screenshot(page, "viewer-390.png")
    context.close()


def test_key_boxes_show_and_hide_in_the_browser_only(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    """Found: the key boxes had no show/hide. Showing a key is the browser's business: no request."""
    page = open_page(browser, launched)
    page.locator("#keys").get_by_text("Your API keys").click()
    box = page.locator("#key-fal input")
    box.fill("my-secret-key")
    expect(box).to_have_attribute("type", "password")
    box.blur()  # the price table learns of the key on blur (its own request); then nothing more
    page.wait_for_timeout(500)
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    page.locator("#show-keys input").check()
    expect(box).to_have_attribute("type", "text")
    expect(box).to_have_value("my-secret-key")
    page.locator("#show-keys input").uncheck()
    expect(box).to_have_attribute("type", "password")
    page.wait_for_timeout(300)
    assert sent == []
    page.context.close()


def test_on_a_phone_in_demo_mode_the_banner_leaves_the_first_screen_to_the_prompt(
    browser: Browser, launched: tuple[Launched, EmulatorServer], tmp_path: Path
) -> None:
    """Found: on a phone the header and the demo banner took ~40 % of the first screen."""
    settings = emulator_settings(launched[1], tmp_path).model_copy(update={"demo": True})
    with serve(settings) as app:
        page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(app.url)
        banner = page.locator("#demo-banner")
        expect(banner).to_contain_text("nothing billed")
        box, generate_box = banner.bounding_box(), page.locator("#generate").bounding_box()
        assert box and generate_box
        assert box["y"] + box["height"] <= 0.25 * 844, box  # header and banner: a quarter at most
        assert generate_box["y"] + generate_box["height"] <= 0.6 * 844, generate_box
        page.context.close()


def test_a_one_image_provider_makes_as_many_calls_as_images_asked(
    browser: Browser, launched: tuple[Launched, EmulatorServer]
) -> None:
    """Found: with 2 images per provider Segmind was blocked (it makes one per call) yet still counted."""
    page = open_page(browser, launched)
    open_advanced(page)
    set_slider(page, "num-images", 2)  # first: the picker's updates that follow never touch it
    choose(page, ["deepinfra", "segmind"])
    expect(page.locator("#num-images")).to_contain_text("Segmind: one call per image")
    segmind = page.locator("#providers .fp-row[data-provider=segmind]")
    expect(segmind).not_to_have_class(re.compile("blocked"))
    expect(page.locator("#generate")).to_have_text(re.compile(r"Generate · ≈ \$[\d.]+$"))
    page.fill("#prompt textarea", "two foxes")
    page.click("#generate")
    for name in ("deepinfra", "segmind"):
        expect(page.locator(f"#result-{name} .fp-images img")).to_have_count(2)
    page.context.close()


def test_the_picker_shows_speed_sorts_by_it_and_offers_the_automatic_choice(
    browser: Browser, launched: tuple[Launched, EmulatorServer], server: EmulatorServer
) -> None:
    """Issue 13: measured speed beside the price, sortable, and "the cheapest that works" on the page,
    which goes on to the next provider when the first refuses before billing."""
    page = open_page(browser, launched)
    rows = page.locator("#providers .fp-rows .fp-row")
    expect(rows.first.locator(".fp-speed")).to_be_visible()  # "no runs yet" or figures: always said
    auto = page.locator("#providers .fp-autos .fp-row[data-provider=auto]")
    expect(auto).to_contain_text("Auto (cheapest): now")
    cheapest = rows.first.locator(".fp-label").inner_text()
    cheapest_id = rows.first.get_attribute("data-provider")
    assert cheapest_id
    expect(auto).to_contain_text(cheapest)

    expect(page.locator("#providers button[data-sort=price]")).to_have_attribute("aria-pressed", "true")
    page.click("#providers button[data-sort=speed]")
    expect(page.locator("#providers button[data-sort=speed]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#providers .fp-rows")).to_have_class(re.compile(r"\bby-speed\b"))

    server.inject(cheapest_id, "429")
    page.fill("#prompt textarea", "a fox chosen by the app")
    choose(page, [])
    auto.locator("input").check()
    expect(page.locator("#providers input:checked")).to_have_count(1)  # the automatic choice alone
    expect(page.locator("#generate")).to_have_text(re.compile(r"Generate · ≈ \$[\d.]+"))
    page.click("#generate")
    card = page.locator("#result-auto")
    expect(card.locator(".fp-images img")).to_have_count(1)
    expect(card.locator(".fp-route")).to_contain_text(f"Tried {cheapest} first: RateLimited (nothing billed)")
    expect(card.locator(".fp-route")).to_contain_text("Served by")
    expect(page.locator(f"#result-{cheapest_id}")).to_be_hidden()  # not named: only the automatic card
    page.context.close()


def test_again_runs_one_card_once_more_with_the_same_seed(
    browser: Browser, launched: tuple[Launched, EmulatorServer], server: EmulatorServer
) -> None:
    """Issue 14's per-card retry: a failed card runs again with the run's seed; the others stay."""
    page = open_page(browser, launched)
    server.inject("segmind", "500")
    generate(page, "a lighthouse at dusk", ["deepinfra", "segmind"])
    expect(page.locator("#result-segmind .fp-slot.failed")).to_be_visible()
    seed = page.locator("#result-deepinfra .fp-caption").inner_text()
    again = page.locator("#again-segmind")
    expect(again).to_be_visible()
    again.click()
    expect(page.locator("#result-segmind .fp-images img")).to_have_count(1)
    expect(page.locator("#result-segmind .fp-caption")).to_contain_text(seed.split(" · ")[0])  # "seed N"
    expect(page.locator("#result-deepinfra .fp-images img")).to_have_count(1)  # untouched
    expect(page.locator("#history button.thumbnail-item")).to_have_count(2)
    page.context.close()
