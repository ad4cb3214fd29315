"""Fake of ``agora`` (agora-python-server-sdk 2.4.10) for tests.

Reproduces the import side effects the adapter must contain: the real package
turns off TLS verification for urllib process-wide and logs at ERROR level.
"""

import logging
import os
import ssl

logger = logging.getLogger(__name__)
ssl._create_default_https_context = ssl._create_unverified_context

sdk_library_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agora_sdk")
sdk_rtc_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtc")
sdk_rtm_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rtm")
logger.error(f"sdk_library_dir: {sdk_library_dir}")
