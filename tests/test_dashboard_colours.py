"""The dashboard's colours reach WCAG AA without a browser: every text colour on every background it can be seen on
(normal, hovered and expanded rows; badges; buttons; the traceback box) is at least 4.5:1, and colours that carry
meaning without text at least 3:1, in the fallback palette (renderers without ``--jp-*`` variables) and in
JupyterLab's own light and dark themes, whose variable values are read from the installed JupyterLab's theme CSS.

The roles and pairs are :mod:`jobmanager_nb.notebook.styles`' (``PALETTE``, ``DARK_PALETTE``, ``CONTRAST_PAIRS``,
``NON_TEXT_PAIRS``); the stylesheet itself is checked to declare exactly those roles and to use no other colour.
``python -m pytest -s tests/test_dashboard_colours.py`` prints every ratio.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from jobmanager_nb.notebook import styles

AA_TEXT = 4.5
AA_NON_TEXT = 3.0

RGBA = tuple[float, float, float, float]
_NAMED = {"white": "#ffffff", "black": "#000000", "transparent": "rgba(0, 0, 0, 0)"}


# ----------------------------------------------------------------------------- colour arithmetic (WCAG 2.x)


def parse_colour(text: str) -> RGBA:
    """``#rgb``, ``#rrggbb``, ``rgb(...)``, ``rgba(...)`` or a few names, as (r, g, b, alpha) with r, g, b in 0..255."""
    text = _NAMED.get(text.strip().lower(), text.strip())
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) == 3:
            digits = "".join(ch * 2 for ch in digits)
        if len(digits) != 6:
            raise ValueError(f"not a colour: {text!r}")
        return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), 1.0)
    match = re.fullmatch(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)", text)
    if match is None:
        raise ValueError(f"not a colour: {text!r}")
    r, g, b, a = match.groups()
    return (float(r), float(g), float(b), 1.0 if a is None else float(a))


def over(top: RGBA, bottom: RGBA) -> RGBA:
    """``top`` painted over an opaque ``bottom`` (source-over)."""
    alpha = top[3]
    r, g, b = (top[i] * alpha + bottom[i] * (1 - alpha) for i in range(3))
    return (r, g, b, 1.0)


def luminance(colour: RGBA) -> float:
    def channel(value: float) -> float:
        s = value / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in colour[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def ratio(a: RGBA, b: RGBA) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_contrast_arithmetic_matches_wcag_examples():
    white, black = parse_colour("#fff"), parse_colour("#000000")
    assert ratio(white, black) == pytest.approx(21.0)
    assert ratio(white, white) == pytest.approx(1.0)
    assert ratio(parse_colour("#767676"), white) == pytest.approx(4.54, abs=0.01)  # the classic AA grey
    assert over(parse_colour("rgba(0, 0, 0, 0.5)"), white)[:3] == pytest.approx((127.5, 127.5, 127.5))


# ----------------------------------------------------------------------------- the themes' variable values

THEMES = Path(sys.prefix) / "share" / "jupyter" / "lab" / "themes" / "@jupyterlab"


def theme_variables(theme: str) -> dict[str, str]:
    """The ``--jp-*`` custom properties a JupyterLab theme extension's CSS sets (``theme-dark-extension`` ...)."""
    path = THEMES / theme / "index.css"
    if not path.is_file():
        pytest.skip(f"JupyterLab's {theme} is not installed here ({path})")
    css = path.read_text(encoding="utf-8")
    return {name: value.strip() for name, value in re.findall(r"(--[\w-]+)\s*:\s*([^;}]+)", css)}


def resolve(value: str, variables: dict[str, str], depth: int = 0) -> str:
    """``var(--x, fallback)`` as a browser resolves it with ``variables`` set (the fallback when ``--x`` is not)."""
    if depth > 20:
        raise ValueError(f"var() nested too deep: {value}")
    match = re.fullmatch(r"var\(\s*(--[\w-]+)\s*(?:,\s*(.+))?\)", value.strip())
    if match is None:
        return value.strip()
    name, fallback = match.groups()
    if name in variables:
        return resolve(variables[name], variables, depth + 1)
    if fallback is None:
        raise ValueError(f"{name} is not set and has no fallback")
    return resolve(fallback, variables, depth + 1)


def palette_colours(palette: dict[str, tuple[str, str]], variables: dict[str, str]) -> dict[str, RGBA]:
    """Each role's colour: its theme variable's value in ``variables``, or its fallback where that is unset."""
    return {
        role: parse_colour(resolve(f"var({var}, {fallback})", variables)) for role, (var, fallback) in palette.items()
    }


def cases() -> list[tuple[str, dict[str, tuple[str, str]], str | None]]:
    return [
        ("fallback light (no --jp-* variables)", styles.PALETTE, None),
        ("fallback dark (VS Code dark, no --jp-* variables)", styles.DARK_PALETTE, None),
        ("JupyterLab Light", styles.PALETTE, "theme-light-extension"),
        ("JupyterLab Dark", styles.DARK_PALETTE, "theme-dark-extension"),
    ]


def measured(palette: dict[str, tuple[str, str]], theme: str | None) -> list[tuple[str, str, str, float, float]]:
    """(text role, backgrounds, where, ratio, required) for every pair, in ``theme`` (None: the fallbacks)."""
    colours = palette_colours(palette, theme_variables(theme) if theme else {})
    base = over(colours["bg"], parse_colour("#ffffff"))  # the table paints its own background
    results = []
    for pairs, required in ((styles.CONTRAST_PAIRS, AA_TEXT), (styles.NON_TEXT_PAIRS, AA_NON_TEXT)):
        for fg, backgrounds, where in pairs:
            behind = base
            for layer in backgrounds:
                behind = over(colours[layer], behind)
            shown = over(colours[fg], behind)
            results.append((fg, " on ".join(reversed(backgrounds)), where, ratio(shown, behind), required))
    return results


@pytest.mark.parametrize(("name", "palette", "theme"), cases(), ids=[case[0] for case in cases()])
def test_every_colour_pair_reaches_wcag_aa(name, palette, theme):
    results = measured(palette, theme)
    print(f"\n{name}")
    for fg, behind, where, value, required in results:
        print(f"  {value:5.2f}:1 (>= {required})  {fg} on {behind}: {where}")
    failing = [
        f"{fg} on {behind} ({where}): {value:.2f}:1 < {required}"
        for fg, behind, where, value, required in results
        if value < required
    ]
    assert not failing, f"{name}: " + "; ".join(failing)


# ----------------------------------------------------------------------------- the stylesheet uses only the roles


def declared_roles(css: str, scope: str) -> dict[str, str]:
    """The ``--jm-*`` declarations of the first rule whose selector list starts a line with ``scope``."""
    block = re.search("^" + re.escape(scope) + r"[^{]*\{([^}]*)\}", css, re.MULTILINE)
    assert block is not None, f"no rule for {scope}"
    return dict(re.findall(r"(--jm-[\w-]+)\s*:\s*([^;]+);", block.group(1)))


def test_the_stylesheet_declares_exactly_the_palettes():
    css = styles._CSS
    light = declared_roles(css, ".jm-table ")
    dark = declared_roles(css, 'body[data-jp-theme-light="false"] .jm-table')
    for declared, palette in ((light, styles.PALETTE), (dark, styles.DARK_PALETTE)):
        assert declared == {f"--jm-{role}": f"var({var}, {fallback})" for role, (var, fallback) in palette.items()}
    assert "body.vscode-dark .jm-table" in css  # VS Code's dark themes get the dark fallbacks


def test_every_colour_in_the_stylesheet_is_a_role():
    css = re.sub(r"--jm-[\w-]+\s*:[^;]+;", "", styles._CSS)  # the role declarations themselves
    used = set(re.findall(r"var\((--jm-[\w-]+)\)", css))
    assert used <= {f"--jm-{role}" for role in styles.PALETTE}, used - {f"--jm-{role}" for role in styles.PALETTE}
    colour_values = re.findall(r"(?<![\w-])(?:color|background(?:-color)?|border(?:-[a-z]+)?)\s*:\s*([^;}]+)", css)
    for value in colour_values:
        literal = re.sub(r"var\(--jm-[\w-]+\)|var\(--jp-[\w-]+(?:,\s*[^()]*)?\)", "", value)
        assert not re.search(r"#[0-9a-fA-F]{3,8}\b|rgba?\(|\b(?:white|black)\b", literal), value
