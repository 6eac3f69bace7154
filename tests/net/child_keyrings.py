"""keyring backends for the credential store child's tests, chosen in the child with
`PYTHON_KEYRING_BACKEND=tests.net.child_keyrings.<Class>` (the child has the source tree on its
PYTHONPATH: net/child_process.child_env)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError

FILE_ENV = "TAPI_TEST_KEYRING_FILE"


class FileKeyring(KeyringBackend):
    """Entries in the JSON file named by $TAPI_TEST_KEYRING_FILE: a store that outlives the
    child, for the tests to look into."""

    @properties.classproperty
    def priority(cls) -> float:
        return 1.0  # only ever chosen by name

    @staticmethod
    def _path() -> Path:
        return Path(os.environ[FILE_ENV])

    def _entries(self) -> dict[str, str]:
        path = self._path()
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._entries()
        entries[f"{service}/{username}"] = password
        self._path().write_text(json.dumps(entries), encoding="utf-8")

    def delete_password(self, service: str, username: str) -> None:
        entries = self._entries()
        if entries.pop(f"{service}/{username}", None) is None:
            raise PasswordDeleteError("Password not found")
        self._path().write_text(json.dumps(entries), encoding="utf-8")


class FailingKeyring(KeyringBackend):
    """A store that is there but refuses every call (as a locked one that cannot be unlocked)."""

    REASON = "the collection is locked and the prompt was dismissed"

    @properties.classproperty
    def priority(cls) -> float:
        return 1.0

    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError(self.REASON)

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError(self.REASON)

    def delete_password(self, service: str, username: str) -> None:
        raise RuntimeError(self.REASON)
