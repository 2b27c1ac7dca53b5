"""The key map is the single source for key handling, the F1 help and docs/keys.md."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt

from avatarcam.gui import keymap
from avatarcam.gui.main_window import MainWindow


def test_docs_keys_md_is_generated_from_the_keymap():
    docs = Path(__file__).resolve().parent.parent / "docs" / "keys.md"
    assert docs.read_text(encoding="utf-8") == keymap.markdown(), \
        "regenerate: python -m avatarcam.gui.keymap > docs/keys.md"


class CallRecorder:
    """Stands in for the window: records which of its methods a hotkey calls, and with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, args))


def test_every_hotkey_calls_one_window_method(qapp):
    for hk in keymap.HOTKEYS:
        target = CallRecorder()
        hk.run(target, hk.arg)
        [(name, _)] = target.calls
        assert callable(getattr(MainWindow, name, None)), f"{hk.keys}: MainWindow.{name} is missing"
    pick_3 = CallRecorder()
    keymap.lookup(Qt.Key.Key_3, Qt.KeyboardModifier.NoModifier).run(pick_3, 3)
    assert pick_3.calls == [("pick_avatar", (2,))]  # the gallery counts from 0


def test_no_key_is_bound_twice(qapp):
    seen = {}
    for hk in keymap.HOTKEYS:
        for k in hk.keys:
            assert k not in seen, f"{k} bound twice"
            seen[k] = hk
    assert len(keymap.table()) == len(seen)


def test_lookup(qapp):
    NO, SHIFT = Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier
    assert keymap.lookup(Qt.Key.Key_X, NO).action == "calibrate"
    assert keymap.lookup(Qt.Key.Key_Z, SHIFT).action == "reset_crop"
    assert keymap.lookup(Qt.Key.Key_Z, NO).action == "overlay_opacity"
    assert keymap.lookup(Qt.Key.Key_U, SHIFT).action == "move_fine"
    assert keymap.lookup(Qt.Key.Key_Question, SHIFT).action == "help"
    assert keymap.lookup(Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier).action == "quit"
    assert keymap.lookup(Qt.Key.Key_7, Qt.KeyboardModifier.KeypadModifier).arg == 7
    assert keymap.lookup(Qt.Key.Key_B, NO) is None
    assert keymap.keys_of("calibrate") == "X"
