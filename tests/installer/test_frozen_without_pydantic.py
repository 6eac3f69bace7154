"""The frozen agent carries msgspec and leaves pydantic out (issue 14): the agent reads its frames
and envelopes with `tapi_agent/protocol/wire.py`; pydantic and the backend's contract models are
the mock's, which the bundle leaves out. (test_frozen_app.py runs the bundle's diagnose, which
reads the stream's welcome frame with them.)"""

from __future__ import annotations

from pathlib import Path

from PyInstaller.archive.readers import CArchiveReader


def test_frozen_bundle_has_msgspec_and_no_pydantic(frozen_bundle: Path) -> None:
    archive = CArchiveReader(str(frozen_bundle / "tapi-agent"))
    modules = set(archive.open_embedded_archive("PYZ.pyz").toc)
    tops = {m.split(".")[0] for m in modules}
    assert "msgspec" in tops and "tapi_agent.protocol.wire" in modules
    assert not tops & {"pydantic", "pydantic_core", "annotated_types", "typing_inspection"}
    assert not {"tapi_agent.protocol.envelope", "tapi_agent.protocol.frames"} & modules
    internal = frozen_bundle / "_internal"
    assert list((internal / "msgspec").glob("_core*"))  # the compiled half is there too
    assert not (internal / "pydantic_core").exists()
