"""The explorer on the built website, in headless Chromium, with no kernel and no network.

Drags the point on the map, moves a slider and draws a digit, and checks each time that the
canvas shows what PyTorch computes from the weights the page carries: the decoded digit's
pixels, and the encoder's mean and log-variance of the drawing. Fails on any console error
or on any request to a host other than the local server; saves screenshots at 1280 px and at
phone width.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from book import explorer
from test_explorer import elbo_on_a_grid  # tests/ is on the path (rootdir conftest)

pytestmark = pytest.mark.slow

PAGE = "chapters/05_latent_explorer.html"
API = "document.querySelector('.vae-explorer').vaeExplorer"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(tmp_path_factory.mktemp("screenshots"))
    print(f"\nexplorer screenshots in {folder}")
    return folder


def open_page(browser, served, watch, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems = watch(page)
    page.goto(f"{served}/{PAGE}", wait_until="networkidle")
    page.wait_for_function(f"{API} !== undefined", timeout=10_000)
    return page, problems


def digit_pixels(page, canvas: str) -> np.ndarray:
    """The grey levels (28, 28) on one of the explorer's 28 x 28 canvases."""
    rgba = page.evaluate(f"""Array.from(document.querySelector('.vae-explorer .vx-{canvas}')
        .getContext('2d').getImageData(0, 0, 28, 28).data)""")
    return np.array(rgba).reshape(28, 28, 4)[..., 0]


@torch.no_grad()
def expected_pixels(model, z) -> np.ndarray:
    p = torch.sigmoid(model.decode(torch.tensor([z], dtype=torch.float32))).reshape(28, 28)
    return np.round(255 * (1 - p.numpy()))


def drag(page, selector: str, points: list[tuple[float, float]]) -> None:
    """Press at the first point (fractions of the element's box), move through the rest."""
    box = page.locator(f".vae-explorer {selector}").bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for point in at[1:]:
        page.mouse.move(*point, steps=8)
    page.mouse.up()


def page_data(site) -> dict:
    html = (site / PAGE).read_text()
    return json.loads(html.split('class="vx-data">', 1)[1].split("</script>", 1)[0])


@pytest.fixture(scope="module")
def page_model(site):
    """The PyTorch model made from the weights the built page carries (its first model) and
    the first model's part of the page's data."""
    first = page_data(site)["models"][0]
    return explorer.load_exported(first["model"]), first


def test_the_explorer_decodes_drags_and_slider_moves_as_pytorch_does(
        site, served, browser, watch, page_model, screenshots):
    model, data = page_model
    page, problems = open_page(browser, served, watch, 1280)
    page.locator(".vae-explorer").scroll_into_view_if_needed()
    start = digit_pixels(page, "digit")
    np.testing.assert_allclose(start, expected_pixels(model, [0, 0]), atol=1)

    drag(page, ".vx-map", [(0.5, 0.5), (0.7, 0.4), (0.8, 0.25)])  # up and to the right
    z = page.evaluate(f"{API}.state.z")
    extent = data["map"]["extent"]
    assert z[0] == pytest.approx(0.6 * extent, abs=0.05 * extent)
    assert z[1] == pytest.approx(0.5 * extent, abs=0.05 * extent)
    dragged = digit_pixels(page, "digit")
    assert np.abs(dragged - start).max() > 50  # the canvas changed ...
    np.testing.assert_allclose(dragged, expected_pixels(model, z), atol=1)  # ... to this

    slider = page.locator(".vae-explorer .vx-z1")
    slider.focus()
    for _ in range(30):
        page.keyboard.press("ArrowLeft")  # 30 steps of 0.01
    moved = page.evaluate(f"{API}.state.z")
    assert moved[0] == pytest.approx(z[0] - 0.3, abs=0.011) and moved[1] == z[1]
    np.testing.assert_allclose(digit_pixels(page, "digit"), expected_pixels(model, moved), atol=1)

    # a "7": a stroke along the top, then down to the bottom left
    drag(page, ".vx-pad", [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)])
    state = page.evaluate(f"({{drawn: Array.from({API}.state.drawn), "
                          f"encoded: {API}.state.encoded}})")
    drawn = torch.tensor(state["drawn"], dtype=torch.float32).reshape(1, 1, 28, 28)
    assert drawn.sum() > 20  # the drawing reached the encoder ...
    with torch.no_grad():
        mu, logvar = model.encode(drawn)
    np.testing.assert_allclose(state["encoded"]["mu"], mu[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(state["encoded"]["logvar"], logvar[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(digit_pixels(page, "seen"),
                               np.round(255 * (1 - drawn.reshape(28, 28).numpy())), atol=1)
    np.testing.assert_allclose(digit_pixels(page, "recon"),
                               expected_pixels(model, state["encoded"]["mu"]), atol=1)
    assert "mean (" in page.locator(".vae-explorer .vx-code").inner_text()

    page.locator(".vae-explorer").screenshot(path=str(screenshots / "explorer_1280.png"))
    page.close()
    assert not problems, problems


def test_a_drawn_digits_exact_posterior_and_a_moved_q_are_pytorchs(
        site, served, browser, watch, page_model, screenshots):
    """Draw a "3": the page's exact log p(x) and the ELBO of the encoder's q equal
    ``book.quadrature``'s on the page's own weights within 0.01 nats; drag q and scale a
    sigma: the ELBO changes, and equals PyTorch's for that q."""
    from book import quadrature

    model, _ = page_model
    page, problems = open_page(browser, served, watch, 1280)
    page.locator(".vae-explorer .vx-pad").scroll_into_view_if_needed()
    page.locator(".vae-explorer .vx-clear").click()
    drag(page, ".vx-pad", [(0.3, 0.2), (0.7, 0.22), (0.45, 0.5), (0.72, 0.7), (0.3, 0.85)])
    page.wait_for_function(f"{API}.exact.posterior !== null && "
                           f"{API}.exact.x === {API}.state.drawn", timeout=30_000)
    numbers = page.locator(".vae-explorer .vx-numbers").inner_text()
    assert numbers.startswith("log p(x)") and "gap" in numbers, numbers
    shown = page.evaluate(f"""(() => {{ const e = {API}.exact;
        return {{x: Array.from(e.x), logPx: e.posterior.logPx, passed: e.posterior.passed,
                 elbo: VAEExplorer.gaussianElbo(e.posterior, e.q).elbo}}; }})()""")
    x = np.array(shown["x"])
    evidence = quadrature.log_evidence(model, x[None])
    assert shown["passed"] and evidence.passed()
    assert abs(shown["logPx"] - evidence.log_px[0]) < 0.01, (shown["logPx"], evidence.log_px)
    assert abs(shown["elbo"] - evidence.elbo[0]) < 0.01, (shown["elbo"], evidence.elbo)

    drag(page, ".vx-posterior", [(0.5, 0.5), (0.56, 0.45)])
    page.locator(".vae-explorer .vx-s1").fill("0.4")
    page.locator(".vae-explorer .vx-s1").dispatch_event("input")
    mine = page.evaluate(f"""(() => {{ const e = {API}.exact;
        return {{q: e.mine, elbo: VAEExplorer.gaussianElbo(e.posterior, e.mine).elbo}}; }})()""")
    assert abs(mine["elbo"] - shown["elbo"]) > 0.05  # moving q moved its ELBO ...
    expected = elbo_on_a_grid(model, x, np.array(mine["q"]["mu"]), np.array(mine["q"]["logvar"]))
    assert abs(mine["elbo"] - expected) < 0.02, (mine, expected)  # ... to PyTorch's
    page.locator(".vae-explorer .vx-best").click()  # runs in slices: wait for its end
    page.wait_for_function(f"{API}.exact.best !== null", timeout=30_000)
    best = page.evaluate(f"VAEExplorer.gaussianElbo({API}.exact.posterior, {API}.exact.best)")
    assert shown["elbo"] - 1e-6 <= best["elbo"] <= evidence.log_px[0] + 1e-6
    assert abs(best["qMass"] - 1) < 1e-3 and page.evaluate(f"{API}.exact.best.converged")
    held = page.evaluate(f"{API}.exact.bestStats.longestSliceMs")
    assert held < 50, f"optimising q held the page for {held:.0f} ms"
    # a lower bound: the optimiser can stop at a local maximum
    assert "amortization gap \u2265" in page.locator(".vae-explorer .vx-numbers").inner_text()
    page.locator(".vae-explorer").screenshot(path=str(screenshots / "posterior_1280.png"))
    page.close()
    assert not problems, problems


def test_switching_models_switches_every_view_to_that_models_weights(
        site, served, browser, watch, screenshots):
    """Each model's button: the decoded digit, the drawing's code and the panel come from
    that model's weights (PyTorch on the same numbers); a VAE's panel shows its posterior, the
    autoencoder's says why it has none; clearing the drawing empties the panel."""
    exhibits = page_data(site)["models"]
    kinds = [e["model"]["kind"] for e in exhibits]
    assert len(exhibits) >= 4 and kinds.count("autoencoder") == 1, kinds
    page, problems = open_page(browser, served, watch, 1280)
    page.locator(".vae-explorer").scroll_into_view_if_needed()
    drag(page, ".vx-pad", [(0.3, 0.2), (0.7, 0.22), (0.45, 0.5), (0.72, 0.7), (0.3, 0.85)])
    buttons = page.locator(".vae-explorer .vx-models button")
    assert buttons.count() == len(exhibits)
    seen_codes = []
    for i in [*range(1, len(exhibits)), 0]:
        buttons.nth(i).click()
        model = explorer.load_exported(exhibits[i]["model"])
        assert page.evaluate(f"{API}.active") == i
        assert buttons.nth(i).get_attribute("aria-pressed") == "true"
        z = page.evaluate(f"{API}.state.z")
        np.testing.assert_allclose(digit_pixels(page, "digit"), expected_pixels(model, z),
                                   atol=1)
        state = page.evaluate(f"({{drawn: Array.from({API}.state.drawn), "
                              f"mu: {API}.state.encoded.mu}})")
        with torch.no_grad():
            mu, _ = model.encode(torch.tensor(state["drawn"], dtype=torch.float32)
                                 .reshape(1, 1, 28, 28))
        np.testing.assert_allclose(state["mu"], mu[0].numpy(), atol=1e-4)
        seen_codes.append(tuple(np.round(state["mu"], 3)))
        numbers = page.locator(".vae-explorer .vx-numbers")
        if kinds[i] == "autoencoder":
            assert "no posterior" in numbers.inner_text()
            assert "code (" in page.locator(".vae-explorer .vx-code").inner_text()
            page.locator(".vae-explorer").screenshot(
                path=str(screenshots / "autoencoder_1280.png"))
        else:
            page.wait_for_function(f"{API}.exact.posterior !== null", timeout=30_000)
            assert numbers.inner_text().startswith("log p(x)")
    assert len(set(seen_codes)) == len(exhibits)  # each model put the drawing elsewhere
    page.locator(".vae-explorer .vx-clear").click()
    assert page.evaluate(f"{API}.exact.posterior === null && {API}.exact.x === null")
    assert "Draw a digit" in page.locator(".vae-explorer .vx-numbers").inner_text()
    page.close()
    assert not problems, problems


def test_the_explorer_is_met_within_the_first_two_screens(site, served, browser):
    """Issue 29: at 1280 x 800 the explorer starts within 2 x 800 px of the page's top (the
    models' training and its log are folded above it), after a line saying what to try first."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{served}/{PAGE}", wait_until="networkidle")
    top = page.evaluate("document.querySelector('.vae-explorer').getBoundingClientRect().top"
                        " + window.scrollY")
    before = page.evaluate("""[...document.querySelectorAll('article.bd-article p')]
        .filter(p => p.compareDocumentPosition(document.querySelector('.vae-explorer'))
                     & Node.DOCUMENT_POSITION_FOLLOWING)
        .map(p => p.textContent).join(' ')""")
    page.close()
    assert top <= 2 * 800, f"the explorer starts {top:.0f} px down the page"
    assert "Try first" in before, "no line before the explorer says what to try first"


def test_the_explorer_answers_the_keyboard_and_names_its_images(site, served, browser, watch):
    """Issue 29: every canvas has an accessible name, the sliders say their value in words, the
    map takes focus and its arrow keys cross it in 30 presses, and q's centre moves by keyboard."""
    page, problems = open_page(browser, served, watch, 1280)
    unnamed = page.evaluate("""[...document.querySelectorAll('.vae-explorer canvas')]
        .filter(c => !(c.getAttribute('aria-label') || '').trim()).map(c => c.className)""")
    extent = float(page.locator(".vae-explorer .vx-z1").get_attribute("max"))
    start = page.evaluate(f"{API}.state.z")
    page.locator(".vae-explorer .vx-map").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    moved = page.evaluate(f"{API}.state.z")
    said = page.locator(".vae-explorer .vx-z1").get_attribute("aria-valuetext")
    page.wait_for_function(f"{API}.exact.posterior !== null", timeout=30_000)
    q = page.evaluate(f"[{API}.exact.mine.mu.slice(), {API}.exact.q.logvar]")
    page.locator(".vae-explorer .vx-posterior").focus()
    page.keyboard.press("ArrowUp")
    after = page.evaluate(f"{API}.exact.mine.mu")
    scale_said = page.locator(".vae-explorer .vx-s1").get_attribute("aria-valuetext")
    page.close()
    assert not unnamed, f"canvases with no accessible name: {unnamed}"
    step = 2 * extent / 30
    assert moved == pytest.approx([start[0] + 3 * step, start[1] - step], abs=1e-9), moved
    assert said == f"z1 = {moved[0]:.2f}", said
    (mu, logvar) = q
    assert after == pytest.approx([mu[0], mu[1] + np.exp(logvar[1] / 2) / 4], abs=1e-9)
    assert scale_said == "sigma1 times 1.00", scale_said
    assert not problems, problems


def test_the_controls_wait_for_the_posterior_they_act_on(site, served, browser, watch):
    """Issue 29: while a posterior computes, and after Clear, the sigma sliders, Optimize and
    Reset are disabled (they would do nothing); once it is there, they are enabled."""
    page, problems = open_page(browser, served, watch, 1280)
    controls = ("""['s1', 's2', 'best', 'reset'].map(n => document.querySelector("""
                """'.vae-explorer .vx-' + n).disabled)""")
    page.wait_for_function(f"{API}.exact.posterior !== null", timeout=30_000)
    ready = page.evaluate(controls)
    page.locator(".vae-explorer .vx-test").click()
    computing = page.evaluate(f"[{API}.exact.posterior === null, {controls}]")
    page.wait_for_function(f"{API}.exact.posterior !== null", timeout=30_000)
    again = page.evaluate(controls)
    drag(page, ".vx-pad", [(0.5, 0.15), (0.5, 0.85)])  # a 1; its posterior replaces the test's
    page.wait_for_function(f"{API}.exact.posterior !== null", timeout=30_000)
    page.locator(".vae-explorer .vx-clear").click()
    cleared = page.evaluate(controls)
    page.close()
    assert ready == [False] * 4 and again == [False] * 4, (ready, again)
    assert computing == [True, [True] * 4], computing
    assert cleared == [True] * 4, cleared
    assert not problems, problems


def test_the_explorer_fits_a_phone(site, served, browser, watch, screenshots):
    page, problems = open_page(browser, served, watch, 390)
    overflow = page.evaluate("""(() => {
        const box = document.querySelector('.vae-explorer');
        return box.scrollWidth - box.clientWidth; })()""")
    page.locator(".vae-explorer").screenshot(path=str(screenshots / "explorer_390.png"))
    page.close()
    assert overflow <= 1, f"the explorer is {overflow} px wider than the page on a phone"
    assert not problems, problems


def test_readers_without_javascript_see_a_grid_of_decoded_points(site, served, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{served}/{PAGE}", wait_until="load")
    image = page.locator(".vae-explorer noscript img")
    image.wait_for(state="visible", timeout=5_000)
    box = image.bounding_box()
    hidden = page.locator(".vae-explorer .vx-row").first.is_hidden()
    context.close()
    assert box["width"] == pytest.approx(289, abs=1)  # 10 x 10 digits of 28 px, 1 px apart
    assert hidden  # no blank canvases where nothing will draw


def test_the_live_widgets_show_a_snapshot_on_the_website(site):
    html = (site / PAGE).read_text()
    from book.widgets import LIVE_NOTE

    # sliders, map, posterior, interpolation, traversal
    assert html.count(LIVE_NOTE) == 5
    assert html.count('class="vae-widget-snapshot"') == 5
