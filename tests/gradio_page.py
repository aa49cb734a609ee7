"""Driving the Gradio page in tests: wait for a tab to be clickable, then open it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# True once the tab is the element under its own centre (Gradio's loading overlay has gone).
TAB_UNCOVERED = """(name) => {
  const tab = [...document.querySelectorAll('[role=tab]')]
    .find((e) => e.textContent.trim() === name);
  if (!tab) return false;
  const r = tab.getBoundingClientRect();
  const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  return hit !== null && (hit === tab || tab.contains(hit));
}"""


WHAT_COVERS = """(name) => {
  const tab = [...document.querySelectorAll('[role=tab]')]
    .find((e) => e.textContent.trim() === name);
  if (!tab) return 'no tab ' + name;
  const r = tab.getBoundingClientRect();
  let hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  const path = [];
  while (hit) { path.push(hit.tagName + '#' + hit.id + '.' + String(hit.className).slice(0, 50));
                hit = hit.parentElement; }
  return path.slice(0, 8).join(' < ');
}"""


def open_tab(page: Any, name: str, *, timeout_ms: int = 90_000,
             on_stuck: Callable[[], None] | None = None) -> None:
    """Click tab ``name`` once Gradio's loading overlay no longer covers it; if it stays
    covered, fail naming what covers it (after ``on_stuck``, e.g. a screenshot)."""
    # Generous: on a busy 2-core machine the page's ~80 assets can take long to load.
    try:
        page.wait_for_function(TAB_UNCOVERED, arg=name, timeout=timeout_ms)
    except Exception:
        if on_stuck is not None:
            on_stuck()
        raise AssertionError(f"tab {name} stays covered by: "
                             f"{page.evaluate(WHAT_COVERS, name)}") from None
    page.get_by_role("tab", name=name).click()


#: A Titanic passenger (the sklearn-model wire form) and how the page's form enters it.
TITANIC_PASSENGER = {"pclass": 1, "sex": "female", "age": 29.0, "sibsp": 1, "parch": 2,
                     "fare": 151.55, "embarked": "C"}


def predict_titanic(page: Any, *, timeout_ms: int = 120_000) -> Any:
    """On the loaded Gradio page, open the Titanic tab, enter :data:`TITANIC_PASSENGER`, predict;
    returns the result locator once it shows a survival probability."""
    open_tab(page, "Titanic", timeout_ms=timeout_ms)
    page.locator("#titanic-class").get_by_text("1st class").click()
    page.locator("#titanic-sex").get_by_text("female").click()
    page.locator("#titanic-age input").fill("29")
    page.locator("#titanic-sibsp input").fill("1")
    page.locator("#titanic-parch input").fill("2")
    page.locator("#titanic-fare input").fill("151.55")
    page.locator("#titanic-port input").click()
    page.get_by_role("option", name="Cherbourg").click()
    page.locator("#titanic-predict").click()
    result = page.locator("#titanic-result")
    result.get_by_text("survival probability").wait_for()
    return result
