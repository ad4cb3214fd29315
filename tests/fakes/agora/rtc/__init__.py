"""Fake of ``agora.rtc``: the real one loads the native libraries with ctypes."""

import ssl

from .. import sdk_library_dir  # noqa: F401  (same import as the real package)

ssl._create_default_https_context = ssl._create_unverified_context
