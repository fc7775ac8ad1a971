# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content cipher gives the same bytes with cryptography releases that lack encrypt_into."""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from ansible_collections.confidential_ai.ack.plugins.module_utils import _gocryptfs_core as core  # noqa: E402


class OldAESGCM:
    """AESGCM as cryptography < 44 has it: encrypt and decrypt, no *_into."""

    def __init__(self, key):
        self._real = AESGCM(key)

    def encrypt(self, nonce, data, aad):
        assert isinstance(nonce, bytes) and isinstance(data, bytes) and isinstance(aad, bytes)
        return self._real.encrypt(nonce, data, aad)

    def decrypt(self, nonce, data, aad):
        return self._real.decrypt(nonce, data, aad)


def counter_random():
    state = {"n": 1}

    def rand(n):
        out = bytes((state["n"] + i) % 251 + 1 for i in range(n))
        state["n"] += n
        return out

    return rand


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 3 * 4096 + 17])
def test_old_cryptography_gives_identical_ciphertext(monkeypatch, size):
    key = bytes(range(32))
    plaintext = bytes((i * 7) % 256 for i in range(size))
    file_id = b"\x01" * 16
    new = core.encrypt_bytes(key, plaintext, random=counter_random(), file_id=file_id)
    monkeypatch.setattr(core, "AESGCM", OldAESGCM)
    old = core.encrypt_bytes(key, plaintext, random=counter_random(), file_id=file_id)
    assert old == new
    assert core.decrypt_bytes(key, old) == plaintext
