"""The hotkey table: the single source for key handling, the F1 help and ``docs/keys.md``.

Keys follow Avatarify's where it has one. Each key is written as Qt's portable key-sequence
text ("X", "Shift+Z", "Ctrl+Q"); ``python -m avatarcam.gui.keymap`` prints the Markdown
table that is ``docs/keys.md``. Each entry names the window method it calls (``run``), so the
table is the whole key binding: the window only looks the key up and calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

Handler = Callable[[Any, object], object]  # run(window, arg): calls one public method of the window


@dataclass(frozen=True)
class Hotkey:
    keys: tuple[str, ...]  # key-sequence texts, each triggering the action
    action: str  # a name for the action (help rows, tooltips, tests)
    help: str
    run: Handler  # called as run(window, arg)
    arg: object = None  # passed to ``run`` (e.g. the avatar number)
    label: str = ""  # how the keys are shown in the help, when not simply joined
    repeat: bool = False  # a held key repeats the action (zoom, move); toggles never repeat


MOVE_STEP = 0.05  # crop moves by this fraction of its side per key press
FINE_MOVE_STEP = 0.01
ZOOM_STEP = 1.1
OPACITY_STEP = 0.1


def _digits() -> tuple[Hotkey, ...]:
    return tuple(Hotkey((str(n),), "pick_avatar", f"Pick avatar {n}", lambda w, n: w.pick_avatar(n - 1), n, "1 - 9")
                 for n in range(1, 10))


def _move(key: str, where: str, direction: tuple[int, int]) -> tuple[Hotkey, Hotkey]:
    def run(w: Any, step: float) -> None:
        w.move_crop(direction[0] * step, direction[1] * step)

    return (Hotkey((key,), "move", f"Move the face crop {where}", run, MOVE_STEP, repeat=True),
            Hotkey((f"Shift+{key}",), "move_fine", f"Move the crop {where}, fine step", run, FINE_MOVE_STEP,
                   repeat=True))


_MOVES = _move("U", "up", (0, -1)) + _move("J", "down", (0, 1)) + _move("H", "left", (-1, 0)) \
    + _move("K", "right", (1, 0))

HOTKEYS: tuple[Hotkey, ...] = (
    Hotkey(("X",), "calibrate", "Calibrate: take your current face as the neutral pose (look straight, "
           "match the avatar's pose and expression first)", lambda w, _: w.calibrate()),
    Hotkey(("F",), "find_best", "Find best frame on/off: while on, the frame that best matches the avatar's pose "
           "becomes the neutral pose (the meter shows current : best)", lambda w, _: w.toggle_find_best()),
    *_digits(),
    Hotkey(("A",), "prev_avatar", "Previous avatar", lambda w, step: w.step_avatar(step), -1, repeat=True),
    Hotkey(("D",), "next_avatar", "Next avatar", lambda w, step: w.step_avatar(step), 1, repeat=True),
    Hotkey(("W",), "zoom", "Zoom the face crop in", lambda w, f: w.zoom_crop(f), ZOOM_STEP, repeat=True),
    Hotkey(("S",), "zoom", "Zoom the face crop out", lambda w, f: w.zoom_crop(f), 1 / ZOOM_STEP, repeat=True),
    *_MOVES[0::2], *_MOVES[1::2],
    Hotkey(("Shift+Z",), "reset_crop", "Reset the face crop (back to automatic framing)", lambda w, _: w.reset_crop()),
    Hotkey(("O",), "overlay", "Avatar overlay on the camera picture on/off (to match its pose)",
           lambda w, _: w.toggle_overlay()),
    Hotkey(("Z",), "overlay_opacity", "Overlay more transparent", lambda w, d: w.change_overlay_opacity(d),
           -OPACITY_STEP, repeat=True),
    Hotkey(("C",), "overlay_opacity", "Overlay more opaque", lambda w, d: w.change_overlay_opacity(d),
           OPACITY_STEP, repeat=True),
    Hotkey(("R",), "mirror_preview", "Mirror the camera preview", lambda w, _: w.toggle_mirror_preview()),
    Hotkey(("T",), "mirror_output", "Mirror the output (what the virtual camera sends)",
           lambda w, _: w.toggle_mirror_output()),
    Hotkey(("0",), "passthrough", "Passthrough: send your real camera picture instead of the avatar",
           lambda w, _: w.toggle_passthrough()),
    Hotkey(("I",), "stats", "Statistics overlay on the output preview", lambda w, _: w.toggle_stats()),
    Hotkey(("L",), "reload_avatars", "Reload the avatar folders", lambda w, _: w.reload_avatar_folders()),
    Hotkey(("F1", "?"), "help", "Show this key map", lambda w, _: w.show_help()),
    Hotkey(("Esc", "Ctrl+Q"), "quit", "Quit", lambda w, _: w.close()),
)


def keys_of(action: str, arg: object = None) -> str:
    """How the keys of an action are written in tooltips, e.g. "X" or "F1 / ?"."""
    for hk in HOTKEYS:
        if hk.action == action and (arg is None or hk.arg == arg):
            return hk.label or " / ".join(hk.keys)
    return ""


def help_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for the help and docs; the 1-9 entries are one row."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for hk in HOTKEYS:
        if hk.label:
            if hk.label in seen:
                continue
            seen.add(hk.label)
            rows.append((hk.label, "Pick avatar 1 - 9 (as numbered in the gallery)"))
        else:
            rows.append((" or ".join(hk.keys), hk.help))
    return rows


def markdown() -> str:
    lines = [
        "# Keys",
        "",
        "Hotkeys of the avatarcam window (press F1 or ? in the window to see this table).",
        "They work while the main window has focus, wherever the keyboard focus is inside it.",
        "",
        "<!-- generated by `python -m avatarcam.gui.keymap > docs/keys.md`; do not edit by hand -->",
        "",
        "| Key | Action |",
        "|-----|--------|",
    ]
    for keys, text in help_rows():
        shown = " or ".join(f"`{k}`" for k in keys.split(" or ")) if keys != "1 - 9" else "`1` - `9`"
        lines.append(f"| {shown} | {text} |")
    return "\n".join(lines) + "\n"


# Qt binding -------------------------------------------------------------------------------
def _combo_key(key: int, mods: int) -> tuple[int, int]:
    from PyQt6.QtCore import Qt

    keep = (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
            | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier).value
    mods &= keep
    # Shift is part of a symbol ("?" is Shift+/ on many layouts): ignore it for non-letters.
    is_letter = Qt.Key.Key_A.value <= key <= Qt.Key.Key_Z.value
    if not is_letter and key < 0x01000000:
        mods &= ~Qt.KeyboardModifier.ShiftModifier.value
    return key, mods


@cache
def table() -> dict[tuple[int, int], Hotkey]:
    """(Qt key, modifiers) -> Hotkey, built from HOTKEYS once."""
    from PyQt6.QtGui import QKeySequence

    out: dict[tuple[int, int], Hotkey] = {}
    for hk in HOTKEYS:
        for text in hk.keys:
            seq = QKeySequence(text)
            if seq.count() != 1:
                raise ValueError(f"bad key {text!r} in the key map")
            out[_combo_key(seq[0].key().value, seq[0].keyboardModifiers().value)] = hk
    return out


def lookup(key: int, modifiers: int) -> Hotkey | None:
    """The hotkey for a key event (``event.key()``, ``event.modifiers()``), or None."""
    key = getattr(key, "value", key)
    modifiers = getattr(modifiers, "value", modifiers)
    return table().get(_combo_key(int(key), int(modifiers)))


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
