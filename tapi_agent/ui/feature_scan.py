"""Keep PySide6's `__feature__` import hook from caching the source of every module.

Importing PySide6 replaces `builtins.__import__` with shiboken's feature hook (the machinery
behind `from __feature__ import snake_case`). After every later import it asks
`shibokensupport.feature._mod_uses_pyside(module)` whether the module mentions "PySide6", and
that function answers with `inspect.getsource(module)`: the whole source file is read and kept
in `linecache` for the life of the process. For the agent, which imports asyncio, websockets,
httpx, pydantic, phonenumbers and keyring after Qt (the tray is shown first), that is ~380
files and about 14 MiB of source text held forever, plus the time to read it, on every start
(measured in BENCHMARKS.md, "Agent footprint"). A PyInstaller build ships bytecode only, so
there `getsource` fails fast and nothing is cached; an install from a wheel (the demo, a
developer's venv) pays the full cost.

`skip_feature_source_scan()` swaps that function for one that gives the same answer for a
plain `.py` module by searching the file's bytes, without caching them; anything else (an
extension module, a frozen or zipped one) still goes to PySide6's own check. What the original
check cached before the swap (`enum.py` and shiboken6's `__init__.py`, which PySide6 imports
while it loads: ~0.2 MiB of lines) is dropped then: `linecache` reads a file again when a
traceback needs it. It relies on a private PySide6 module, so it does nothing when that module
or function is not there, and `tests/ui/test_feature_scan.py` fails if a PySide6 upgrade
changes either.
"""

from __future__ import annotations

import types
from collections.abc import Callable

_MARK = "_tapi_agent_no_linecache"


def _uncached_check(original: Callable[[types.ModuleType], bool]) -> Callable[[object], bool]:
    def uses_pyside(module: object) -> bool:
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py"):
            try:
                with open(path, "rb") as f:
                    return b"PySide6" in f.read()
            except OSError:
                pass
        return original(module)  # type: ignore[arg-type]

    setattr(uses_pyside, _MARK, True)
    return uses_pyside


def skip_feature_source_scan() -> bool:
    """Install the uncached check; True when it is in place (now or already)."""
    import PySide6  # noqa: F401  (loads shiboken6, which provides shibokensupport)

    try:
        import shibokensupport.feature as feature  # type: ignore[import-not-found]
    except ImportError:
        return False
    original = getattr(feature, "_mod_uses_pyside", None)
    if not callable(original):
        return False
    if getattr(original, _MARK, False):
        return True
    feature._mod_uses_pyside = _uncached_check(original)
    import linecache

    linecache.clearcache()  # what the original check read while PySide6 loaded
    return True
