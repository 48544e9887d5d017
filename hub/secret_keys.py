"""Keys of one installation (安装密钥): from an environment variable, else a file created once.

The hub keeps a few symmetric keys that every process of one installation must share and that
never leave it: the event key behind opaque references (:mod:`hub.pseudonyms`) and the key behind
the tokens of public verification links (:mod:`e_license_store.verify_link`). Each is read from its
environment variable (hex or base64, at least 32 bytes) or, when that is unset, from
``$HUB_HOME/secrets/<name>``, created on first use with 32 random bytes, readable by its owner
only (mode 600, in a directory of mode 700). Two processes creating it at once agree on one key:
the file is written aside and linked into place, which refuses to overwrite.

>>> k = InstallationKey("HUB_EXAMPLE_KEY", "example.key")
>>> k.decode("ab" * 32) == bytes.fromhex("ab" * 32)
True
>>> k.decode("short")
Traceback (most recent call last):
...
hub.secret_keys.SecretKeyError: HUB_EXAMPLE_KEY must be at least 32 bytes, hex or base64
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from hub.settings import get_settings

KEY_BYTES = 32


class SecretKeyError(RuntimeError):
    """A key's environment variable is set but unusable."""


@dataclass
class InstallationKey:
    """One key of the installation: ``env_var`` first, then ``$HUB_HOME/secrets/<filename>``."""

    env_var: str
    filename: str
    error: type[SecretKeyError] = SecretKeyError
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cache: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)

    def path(self) -> Path:
        return get_settings().home / "secrets" / self.filename

    def decode(self, text: str) -> bytes:
        text = text.strip()
        for decode in (bytes.fromhex, base64.b64decode):
            try:
                raw = decode(text)
            except (ValueError, binascii.Error):
                continue
            if len(raw) >= KEY_BYTES:
                return raw
        raise self.error(f"{self.env_var} must be at least {KEY_BYTES} bytes, hex or base64")

    def get(self) -> bytes:
        """The key (cached per environment value and path: tests change both)."""
        env = os.environ.get(self.env_var, "")
        path = self.path()
        cache_key = (env, str(path))
        with self._lock:
            key = self._cache.get(cache_key)
            if key is None:
                key = self.decode(env) if env else self._load_or_create(path)
                self._cache[cache_key] = key
            return key

    def _load_or_create(self, path: Path) -> bytes:
        if path.exists():
            return self.decode(path.read_text(encoding="ascii"))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES).hex())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and refuses to overwrite: of two first users, one key wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return self.decode(path.read_text(encoding="ascii"))
