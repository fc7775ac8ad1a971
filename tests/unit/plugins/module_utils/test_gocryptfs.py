# -*- coding: utf-8 -*-
# Copyright (c) confidential_ai.ack contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Known-answer and behaviour tests of the Python gocryptfs writer/reader (no FUSE, fast).

The vectors come from section 12 of the project's gocryptfs format reference, generated with the
real gocryptfs 2.3. Randomness (salt, file IDs, nonces, IVs) is injected to reproduce them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import tracemalloc

import pytest

pytest.importorskip('cryptography')

from cryptography.exceptions import InvalidTag  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from ansible_collections.confidential_ai.ack.plugins.module_utils import gocryptfs as g  # noqa: E402
from ansible_collections.confidential_ai.ack.plugins.module_utils import _gocryptfs_core as core  # noqa: E402

KAT_CONF = (
    b'{\n'
    b'\t"Creator": "gocryptfs 2.3",\n'
    b'\t"EncryptedKey": "sd0a2W0tCQow9jl1PH8liMxiTW5FmbF113LTBIT49Qv/jLFazwU1NEP+ooJcIQuOnkja1/vdwLY7xzkzx4u62A==",\n'
    b'\t"ScryptObject": {\n'
    b'\t\t"Salt": "IOeK5R8qIZqk0sU+CE/f7jc4MNBjkl7zz2dA3eazRLw=",\n'
    b'\t\t"N": 65536,\n'
    b'\t\t"R": 8,\n'
    b'\t\t"P": 1,\n'
    b'\t\t"KeyLen": 32\n'
    b'\t},\n'
    b'\t"Version": 2,\n'
    b'\t"FeatureFlags": [\n'
    b'\t\t"HKDF",\n'
    b'\t\t"GCMIV128",\n'
    b'\t\t"DirIV",\n'
    b'\t\t"EMENames",\n'
    b'\t\t"LongNames",\n'
    b'\t\t"Raw64"\n'
    b'\t]\n'
    b'}\n'
)
KAT_PASSWORD = b'kat-password'
H = bytes.fromhex
KAT_SCRYPT = H('ccafead9fb38dee54d5056b7c96410a043e94109184248774599b024743bb1e9')
KAT_KEK = H('7f878fe0bed15eba86deb4114bad1aaf55656d768a4330edfb859734c7266a7f')
KAT_MASTER = H('efc4e718348e7ffdac2020228beacbd76881889d9ba5d87cca392f6a549fe252')
KAT_CONTENT = H('dfe85bfa4051bd66c5306f7a8a666885ffc084353b5a83a8f65b1ba85ef8c2f1')
KAT_NAMES = H('377e11f25f2fd41baa46617dff6a5de75a5228444f39241db391479b3f56f5b4')
ROOT_IV = H('ed790920c3a473c062fddee83de02723')
SUB_IV = H('4875ae31d38cd13cf07299081d219c7b')
LONG_NAME_FILE = ('MWfuJAL6FX60aROSTQnfx9d7FCGw9qR7hz0AaV4Sg5hjOoLaaQoM0D0NM5vGFNGXbaQ3uBzfHwE7v3Hwn2OMoj_ZTYwPRuiMkYHgSLsig6LhOqF1cR0grlU'
                  'BnGfD-UwreBd_r2EbTXPlhCQvJegYlXELL576RjWgc0wobfaM5bpJHXOw9E7mCoklo0twDraMjkATy3edoTXIHOebH2Nt23jeuewWBm5UGPpjubHyiUtvB5c'
                  'uKRnLTOTOItMjlodjBhoauAaAQQXDO7A6hRiLdw')
NAMES = [
    (ROOT_IV, 'empty.bin', 'OiCAUfkgWR2iq5Q4bf466Q'),
    (ROOT_IV, 'one.bin', 'JYqt2VIYowfbqvz_n-tiCw'),
    (ROOT_IV, 'hello.txt', '8u4aytfWirTB9jZsHSG8eg'),
    (ROOT_IV, 'sub', 'Craxh4jLLXWySHOO15KsOw'),
    (ROOT_IV, 'link', '6cigA84EnROUJAtM2l3mkQ'),
    (ROOT_IV, 'f4097.bin', 'ueYa0NYZ4UR2xJxjbsKGVw'),
    (SUB_IV, 'inner.txt', '-i6HuZWSDTSGZcp9MDp7Qw'),
]
LONG_DISK = 'gocryptfs.longname.zGwjdMPRmlBQIL70achM9A6yE2snLSaWOE-_5sqTMas'
CT_ONE = H('000222e2a4277f5b8da5bd7a730f4603dfaf8485d81d2bc679981f5af3a6d86b42358967d6f4fe2ae50343c5a55b09942207ec')
CT_HELLO = H('0002b3eba36095c1aaf5caaeaead7b674d42e23727331cc0610fac096ff8e948f2b9e582ef8dff36d6308bb9892352e4e11e609a58'
             'dafa68901eddf01886f18190fd')
CT_INNER = H('000246b8f1205022765a481922a186a07bcefad654e93ef17da4c5626f0824dda1d326f700c63971c91c835783bebc33a9a01a001449e444')
CT_LONG = H('0002bf28d49bbbecede664a0915a0ee41d066f1c7ac7524169ac011e37dd94cacf5d97ad822e2afefdf5f72e3d224b7f012bd5')
LINK_STORED = 'q0c13rvM5pIh6FriTFskLapRwzrtpgOI_2id5P_KsLzzmm0DMhdxuSE'
FAST_N = 1024   # gocryptfs' lower bound; only for tests


def injected(*chunks):
    """A random source that returns exactly the given bytes, in order, then fails."""
    stream = io.BytesIO(b''.join(chunks))

    def read(n):
        data = stream.read(n)
        assert len(data) == n, 'test random source exhausted'
        return data
    return read


def f4097_plaintext():
    out = b''
    i = 0
    while len(out) < 4097:
        out += hashlib.sha256(b'kat' + struct.pack('>I', i)).digest()
        i += 1
    return out[:4097]


# ------------------------------------------------------------------------------------------
# 12.1 configuration and keys

def test_scrypt_and_kek_vectors():
    conf = g.parse_conf(KAT_CONF)
    s = core.scrypt_kdf(KAT_PASSWORD, conf['salt'], conf['n'], conf['r'], conf['p'], conf['keylen'])
    assert s == KAT_SCRYPT
    assert core.hkdf_sha256(s, core.INFO_CONTENT) == KAT_KEK


def test_unwrap_master_key():
    assert g.load_master_key(KAT_CONF, KAT_PASSWORD) == KAT_MASTER
    assert g.load_master_key(KAT_CONF, 'kat-password') == KAT_MASTER


def test_wrong_password_and_wrong_aad_fail():
    with pytest.raises(g.WrongPasswordError):
        g.load_master_key(KAT_CONF, 'kat-passwore')
    raw = g.parse_conf(KAT_CONF)['encrypted_key']
    with pytest.raises(InvalidTag):
        AESGCM(KAT_KEK).decrypt(raw[:16], raw[16:], b'')          # empty AAD is wrong
    with pytest.raises(InvalidTag):
        AESGCM(KAT_SCRYPT).decrypt(raw[:16], raw[16:], bytes(8))  # the raw scrypt output is not the KEK
    assert AESGCM(KAT_KEK).decrypt(raw[:16], raw[16:], bytes(8)) == KAT_MASTER


def test_subkeys():
    keys = g.Keys(KAT_MASTER)
    assert keys.content == KAT_CONTENT
    assert keys.names == KAT_NAMES


def test_init_conf_reproduces_gocryptfs_file_byte_for_byte():
    parsed = g.parse_conf(KAT_CONF)
    conf, key = g.init_conf(KAT_PASSWORD, master_key=KAT_MASTER, creator='gocryptfs 2.3',
                            random=injected(parsed['salt'], parsed['encrypted_key'][:16]))
    assert key == KAT_MASTER
    assert conf == KAT_CONF


def test_init_conf_defaults_and_round_trip():
    conf, key = g.init_conf('secret', scrypt_n=FAST_N)
    doc = json.loads(conf)
    assert list(doc) == ['Creator', 'EncryptedKey', 'ScryptObject', 'Version', 'FeatureFlags']
    assert doc['FeatureFlags'] == ['HKDF', 'GCMIV128', 'DirIV', 'EMENames', 'LongNames', 'Raw64']
    assert doc['Version'] == 2
    assert doc['ScryptObject']['R'] == 8 and doc['ScryptObject']['P'] == 1 and doc['ScryptObject']['KeyLen'] == 32
    assert len(base64.b64decode(doc['ScryptObject']['Salt'])) == 32
    assert len(base64.b64decode(doc['EncryptedKey'])) == 64
    assert conf.startswith(b'{\n\t"Creator"') and conf.endswith(b'}\n')
    assert g.load_master_key(conf, 'secret') == key
    conf2, key2 = g.init_conf('secret', scrypt_n=FAST_N)
    assert key2 != key and conf2 != conf


def test_default_scrypt_n_is_65536():
    doc = json.loads(g.init_conf('secret')[0])
    assert doc['ScryptObject']['N'] == 65536


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d.update(Version=3), 'Version'),
    (lambda d: d['FeatureFlags'].append('LongNameMax'), 'feature flags'),
    (lambda d: d['FeatureFlags'].remove('DirIV'), 'feature flags'),
    (lambda d: d['FeatureFlags'].append('PlaintextNames'), 'feature flags'),
    (lambda d: d['ScryptObject'].update(N=512), 'scrypt'),
    (lambda d: d['ScryptObject'].update(R=4), 'scrypt'),
    (lambda d: d.update(EncryptedKey='AAAA'), 'EncryptedKey'),
])
def test_parse_conf_refuses_non_default(mutate, message):
    doc = json.loads(KAT_CONF)
    mutate(doc)
    with pytest.raises(g.UnsupportedConfError, match=message):
        g.parse_conf(json.dumps(doc).encode())


def test_parse_conf_accepts_reordered_compact():
    doc = json.loads(KAT_CONF)
    doc['FeatureFlags'] = sorted(doc['FeatureFlags'])
    compact = json.dumps(dict(reversed(list(doc.items()))), separators=(',', ':')).encode()
    assert g.load_master_key(compact, KAT_PASSWORD) == KAT_MASTER


@pytest.mark.parametrize('content, expected', [
    (b'kat-password\n', b'kat-password'),       # cat << EOF
    (b'kat-password', b'kat-password'),         # echo -n
    (b'kat-password\r\n', b'kat-password\r'),   # gocryptfs keeps \r
])
def test_password_file_semantics(content, expected):
    assert g.password_from_file_content(content) == expected


@pytest.mark.parametrize('content', [b'', b'\n', b'a\nb\n', b'x' * 2049])
def test_password_file_refusals(content):
    with pytest.raises(g.GocryptfsError):
        g.password_from_file_content(content)


def test_read_password_file(tmp_path):
    path = tmp_path / 'pw'
    path.write_bytes(b'kat-password\n')
    assert g.read_password_file(str(path)) == KAT_PASSWORD
    path.write_bytes(b'y' * 5000)
    with pytest.raises(g.GocryptfsError, match='longer'):
        g.read_password_file(str(path))


def test_password_with_newline_refused():
    with pytest.raises(g.GocryptfsError, match='newline'):
        g.normalize_password('a\nb')


# ------------------------------------------------------------------------------------------
# 12.2 names and section 7 EME

def test_eme_library_vectors():
    assert g.eme_encrypt(bytes(32), bytes(16), bytes(16)).hex() == 'f1b9ce8ca15a4ba9fb476905434b9fd3'
    big = g.eme_encrypt(bytes(32), bytes(16), bytes(2048))
    assert big.hex().startswith('630500884158a8d41216aaa6351e92ea7ca540a949e73f1d')
    assert g.eme_decrypt(bytes(32), bytes(16), big) == bytes(2048)


def test_eme_hello_step():
    out = g.eme_encrypt(KAT_NAMES, ROOT_IV, H('68656c6c6f2e74787407070707070707'))
    assert out.hex() == 'f2ee1acad7d68ab4c1f6366c1d21bc7a'


@pytest.mark.parametrize('blocks', [1, 2, 3, 16, 128])
def test_eme_round_trip(blocks):
    key, tweak, data = os.urandom(32), os.urandom(16), os.urandom(16 * blocks)
    ct = g.eme_encrypt(key, tweak, data)
    assert ct != data and len(ct) == len(data)
    assert g.eme_decrypt(key, tweak, ct) == data
    assert g.eme_decrypt(key, os.urandom(16), ct) != data


def test_eme_rejects_bad_lengths():
    with pytest.raises(ValueError):
        g.eme_encrypt(bytes(32), bytes(16), bytes(15))
    with pytest.raises(ValueError):
        g.eme_encrypt(bytes(32), bytes(16), bytes(16 * 129))


@pytest.mark.parametrize('iv, plain, encoded', NAMES)
def test_name_vectors(iv, plain, encoded):
    assert g.encrypt_name(KAT_NAMES, iv, plain) == encoded
    assert g.decrypt_name(KAT_NAMES, iv, encoded) == plain.encode()


def test_long_name_vector():
    encoded = g.encrypt_name(KAT_NAMES, ROOT_IV, 'x' * 200)
    assert encoded == LONG_NAME_FILE
    assert len(encoded) == 278
    assert hashlib.sha256(encoded.encode()).hexdigest() == 'cc6c2374c3d19a505020bef469c84cf40eb2136b272d2696384fbfe6ca9331ab'
    disk, name_file = g.cipher_entry_name(encoded)
    assert disk == LONG_DISK
    assert name_file == encoded.encode()
    assert g.decrypt_name(KAT_NAMES, ROOT_IV, encoded) == b'x' * 200


@pytest.mark.parametrize('length, encoded_len, is_long', [(1, 22, False), (15, 22, False), (16, 43, False), (175, 235, False),
                                                          (176, 256, True), (191, 256, True), (192, 278, True), (255, 342, True)])
def test_name_length_boundaries(length, encoded_len, is_long):
    encoded = g.encrypt_name(KAT_NAMES, ROOT_IV, 'n' * length)
    assert len(encoded) == encoded_len
    disk, name_file = g.cipher_entry_name(encoded)
    assert (name_file is not None) == is_long
    assert (disk.startswith('gocryptfs.longname.') and len(disk) == 62) == is_long


def test_names_with_utf8_and_specials_round_trip():
    for name in ['gocryptfs.conf', 'gocryptfs.diriv', '-leading', '.hidden', 'a b=c', u'mod\u00e8le-\u6a21\u578b.bin']:
        enc = g.encrypt_name(KAT_NAMES, SUB_IV, name)
        assert '=' not in enc and '/' not in enc and '+' not in enc
        assert g.decrypt_name(KAT_NAMES, SUB_IV, enc) == name.encode('utf-8')


@pytest.mark.parametrize('name', ['', '.', '..', 'a/b', 'a\0b', 'z' * 256])
def test_invalid_plain_names(name):
    with pytest.raises(g.GocryptfsError):
        g.encrypt_name(KAT_NAMES, ROOT_IV, name)


def test_bad_padding_is_refused():
    # EME of a block whose last byte is 0 (invalid PKCS#7) must not decrypt to a name.
    bad = core.b64url_encode(g.eme_encrypt(KAT_NAMES, ROOT_IV, b'abcdefghijklmno\x00'))
    with pytest.raises(g.CorruptDataError):
        g.decrypt_name(KAT_NAMES, ROOT_IV, bad)
    whole_pad = core.b64url_encode(g.eme_encrypt(KAT_NAMES, ROOT_IV, b'\x10' * 16))
    with pytest.raises(g.CorruptDataError):
        g.decrypt_name(KAT_NAMES, ROOT_IV, whole_pad)
    with pytest.raises(g.CorruptDataError):
        g.decrypt_name(KAT_NAMES, ROOT_IV, 'OiCAUfkgWR2iq5Q4bf466Q==')


# ------------------------------------------------------------------------------------------
# 12.3 contents

@pytest.mark.parametrize('ct, plain', [
    (b'', b''),
    (CT_ONE, b'A'),
    (CT_HELLO, b'hello gocryptfs\n'),
    (CT_INNER, b'inner\n'),
    (CT_LONG, b'L'),
])
def test_content_decrypt_vectors(ct, plain):
    assert g.decrypt_bytes(KAT_CONTENT, ct) == plain


@pytest.mark.parametrize('ct, plain', [(CT_ONE, b'A'), (CT_HELLO, b'hello gocryptfs\n'), (CT_INNER, b'inner\n')])
def test_content_encrypt_vectors(ct, plain):
    file_id, nonce = ct[2:18], ct[18:34]
    assert g.encrypt_bytes(KAT_CONTENT, plain, random=injected(file_id, nonce)) == ct


def test_f4097_vector_both_ways():
    plain = f4097_plaintext()
    assert hashlib.sha256(plain).hexdigest() == 'c54e823db824137c76422ef8859b876f6a96067f4eb62cf09773395e8107a4cb'
    rnd = injected(H('f97a1c23fb1e62a2e97f5d2ca093f858'), H('c95d7e7f4c9441ca1b7f10bd05b79720'), H('3916e23f3cad35e1fded40076d7a702d'))
    ct = g.encrypt_bytes(KAT_CONTENT, plain, random=rnd)
    assert len(ct) == 4179
    assert hashlib.sha256(ct).hexdigest() == '56d0df6ec261f1aa759e083ab1044ca4eaa0b6b384efc52f8585442deaeea59b'
    assert ct[18 + 16 + 4096:18 + 4128] == H('0839614bc6bfd28c6883078e9b3b87ac')
    assert ct[18 + 4128:] == H('3916e23f3cad35e1fded40076d7a702d') + H('e8') + H('81ec6d93d112471c2e9e5d9d81d59791')
    assert g.decrypt_bytes(KAT_CONTENT, ct) == plain


def test_flipped_byte_is_detected():
    for pos in (18, 18 + 16, len(CT_HELLO) - 1):
        bad = bytearray(CT_HELLO)
        bad[pos] ^= 0x01
        with pytest.raises(g.CorruptDataError, match='block #0'):
            g.decrypt_bytes(KAT_CONTENT, bytes(bad))
    bad = bytearray(CT_HELLO)
    bad[5] ^= 0x80          # the file ID is bound through the AAD
    with pytest.raises(g.CorruptDataError):
        g.decrypt_bytes(KAT_CONTENT, bytes(bad))


def test_block_order_is_bound():
    plain = os.urandom(3 * 4096)
    ct = bytearray(g.encrypt_bytes(KAT_CONTENT, plain))
    b0, b1 = ct[18:18 + 4128], ct[18 + 4128:18 + 2 * 4128]
    ct[18:18 + 4128], ct[18 + 4128:18 + 2 * 4128] = b1, b0
    with pytest.raises(g.CorruptDataError, match='block #0'):
        g.decrypt_bytes(KAT_CONTENT, bytes(ct))


def test_holes_and_header_only():
    file_id = os.urandom(16)
    assert g.decrypt_bytes(KAT_CONTENT, b'\x00\x02' + file_id) == b''
    ct = g.encrypt_bytes(KAT_CONTENT, b'q' * 8192, file_id=file_id)
    holed = ct[:18] + bytes(4128) + ct[18 + 4128:]
    assert g.decrypt_bytes(KAT_CONTENT, holed) == bytes(4096) + b'q' * 4096


@pytest.mark.parametrize('size, csize', [(0, 0), (1, 51), (4095, 4145), (4096, 4146), (4097, 4179), (10 * 1048576, 10567698)])
def test_ciphertext_sizes(size, csize):
    assert g.ciphertext_size(size) == csize
    assert g.plaintext_size(csize) == size


@pytest.mark.parametrize('csize', [1, 17, 19, 18 + 32, 18 + 4128 + 5])
def test_impossible_ciphertext_sizes(csize):
    with pytest.raises(g.CorruptDataError):
        g.plaintext_size(csize)


def test_header_rules():
    with pytest.raises(g.CorruptDataError):
        core.parse_header(b'\x00\x01' + os.urandom(16))
    with pytest.raises(g.CorruptDataError):
        core.parse_header(b'\x00\x02' + bytes(16))
    with pytest.raises(g.GocryptfsError):
        g.make_header(bytes(16))


def test_all_zero_nonce_is_never_emitted():
    cc = g.ContentCipher(KAT_CONTENT, random=injected(bytes(16)))
    with pytest.raises(g.GocryptfsError, match='all-zero nonce'):
        cc.encrypt_blocks(os.urandom(16), 0, memoryview(b'abc'), memoryview(bytearray(64)))


# ------------------------------------------------------------------------------------------
# 12.4 symlinks

def test_symlink_vector_both_ways():
    assert g.decrypt_symlink_target(KAT_CONTENT, LINK_STORED) == b'hello.txt'
    raw = base64.urlsafe_b64decode(LINK_STORED + '=' * (-len(LINK_STORED) % 4))
    assert raw[:16] == H('ab4735debbcce69221e85ae24c5b242d')
    assert g.encrypt_symlink_target(KAT_CONTENT, 'hello.txt', random=injected(raw[:16])) == LINK_STORED
    assert g.encrypt_symlink_target(KAT_CONTENT, b'') == ''


@pytest.mark.parametrize('length, encoded', [(9, 55), (20, 70), (300, 443)])
def test_symlink_target_lengths(length, encoded):
    stored = g.encrypt_symlink_target(KAT_CONTENT, b't' * length)
    assert len(stored) == encoded
    assert g.decrypt_symlink_target(KAT_CONTENT, stored) == b't' * length


# ------------------------------------------------------------------------------------------
# 12.5: rebuild the gocryptfs-written CIPHERDIR (all but f4097.bin, whose ciphertext is only
# given as a hash) and read it with the tree reader.

def build_kat_cipherdir(root):
    root.mkdir()
    (root / 'gocryptfs.conf').write_bytes(KAT_CONF)
    (root / 'gocryptfs.diriv').write_bytes(ROOT_IV)
    (root / '6cigA84EnROUJAtM2l3mkQ').symlink_to(LINK_STORED)
    (root / '8u4aytfWirTB9jZsHSG8eg').write_bytes(CT_HELLO)
    sub = root / 'Craxh4jLLXWySHOO15KsOw'
    sub.mkdir()
    (sub / 'gocryptfs.diriv').write_bytes(SUB_IV)
    (sub / '-i6HuZWSDTSGZcp9MDp7Qw').write_bytes(CT_INNER)
    (root / 'JYqt2VIYowfbqvz_n-tiCw').write_bytes(CT_ONE)
    (root / 'OiCAUfkgWR2iq5Q4bf466Q').write_bytes(b'')
    (root / LONG_DISK).write_bytes(CT_LONG)
    (root / (LONG_DISK + '.name')).write_bytes(LONG_NAME_FILE.encode())
    return root


def test_read_kat_tree(tmp_path):
    root = build_kat_cipherdir(tmp_path / 'c')
    master, created = g.open_cipherdir(str(root), KAT_PASSWORD)
    assert master == KAT_MASTER and not created
    entries = dict((e.rel, e) for e in g.walk_cipherdir(str(root), master))
    assert sorted(entries) == [b'empty.bin', b'hello.txt', b'link', b'one.bin', b'sub', b'sub/inner.txt', b'x' * 200]
    out = tmp_path / 'plain'
    g.decrypt_tree(str(root), str(out), master)
    assert (out / 'hello.txt').read_bytes() == b'hello gocryptfs\n'
    assert (out / 'one.bin').read_bytes() == b'A'
    assert (out / 'empty.bin').read_bytes() == b''
    assert (out / 'sub' / 'inner.txt').read_bytes() == b'inner\n'
    assert (out / ('x' * 200)).read_bytes() == b'L'
    assert os.readlink(str(out / 'link')) == 'hello.txt'


def test_unknown_entry_is_reported(tmp_path):
    root = build_kat_cipherdir(tmp_path / 'c')
    (root / 'README').write_bytes(b'not encrypted')
    with pytest.raises(g.CorruptDataError, match='README'):
        g.walk_cipherdir(str(root), KAT_MASTER)


# ------------------------------------------------------------------------------------------
# Streaming, chunking and bounded memory

def test_iter_encrypt_file_chunks_match_whole(tmp_path):
    plain = os.urandom(10 * 4096 + 123)
    path = tmp_path / 'p'
    path.write_bytes(plain)
    file_id = os.urandom(16)
    nonces = os.urandom(16 * 11)
    chunks = list(g.iter_encrypt_file(str(path), KAT_CONTENT, chunk_blocks=3, random=injected(nonces), file_id=file_id))
    assert len(chunks[0]) == 18
    assert all(len(c) <= 3 * 4128 for c in chunks[1:])
    assert len(chunks) == 1 + 4
    whole = g.encrypt_bytes(KAT_CONTENT, plain, random=injected(file_id, nonces))
    assert b''.join(chunks) == whole
    assert g.decrypt_bytes(KAT_CONTENT, whole) == plain
    assert b''.join(g.iter_decrypt_file(_write(tmp_path / 'c', whole), KAT_CONTENT, chunk_blocks=2)) == plain


def _write(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize('size', [0, 1, 4095, 4096, 4097, 3 * 4096, 5 * 4096 + 999])
def test_stream_encryptor_matches_file_encryption(size):
    plain = os.urandom(size)
    file_id = os.urandom(16)
    nonces = os.urandom(16 * g.block_count(size))
    enc = g.StreamEncryptor(KAT_CONTENT, random=injected(nonces), file_id=file_id)
    out = []
    pos = 0
    for piece in (1, 4095, 10, 5000, 9000, 100000):           # odd piece sizes, across block borders
        out.append(enc.update(plain[pos:pos + piece]))
        pos += piece
    out.append(enc.finalize())
    ct = b''.join(out)
    assert ct == g.encrypt_bytes(KAT_CONTENT, plain, random=injected(file_id, nonces))
    assert enc.plain_bytes == size and enc.cipher_bytes == len(ct) == g.ciphertext_size(size)
    assert g.decrypt_bytes(KAT_CONTENT, ct) == plain
    with pytest.raises(g.GocryptfsError):
        enc.update(b'x')


def test_stream_encryptor_kat():
    enc = g.StreamEncryptor(KAT_CONTENT, random=injected(CT_HELLO[18:34]), file_id=CT_HELLO[2:18])
    assert enc.update(b'hello ') == b''
    assert enc.update(b'gocryptfs\n') == b''
    assert enc.finalize() == CT_HELLO


def test_iter_encrypt_file_empty(tmp_path):
    assert list(g.iter_encrypt_file(_write(tmp_path / 'e', b''), KAT_CONTENT)) == []


def test_ranges_land_at_their_offsets(tmp_path):
    """Independent block ranges, written at cipher_offset(first), give the same file as one pass."""
    plain = os.urandom(7 * 4096 + 5)
    src = _write(tmp_path / 'p', plain)
    file_id = os.urandom(16)
    out = bytearray(g.ciphertext_size(len(plain)))
    out[:18] = g.make_header(file_id)
    cc = g.ContentCipher(KAT_CONTENT)
    fd = os.open(src, os.O_RDONLY)
    try:
        for first, count in ((6, 5), (0, 3), (3, 3)):   # out of order, last range past the end
            off = g.cipher_offset(first)
            for chunk in g.iter_encrypt_range(cc, fd, file_id, first, count, len(plain), chunk_blocks=2):
                out[off:off + len(chunk)] = chunk
                off += len(chunk)
    finally:
        os.close(fd)
    assert g.decrypt_bytes(KAT_CONTENT, bytes(out)) == plain


def test_memory_is_bounded_by_chunk_not_file(tmp_path):
    size = 24 * 1048576
    path = tmp_path / 'big'
    with open(str(path), 'wb') as handle:
        for dummy in range(24):
            handle.write(os.urandom(1048576))
    total = 0
    tracemalloc.start()
    try:
        for chunk in g.iter_encrypt_file(str(path), KAT_CONTENT, chunk_blocks=16):
            total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == g.ciphertext_size(size)
    assert peak < 1048576, 'peak %d bytes for a %d-byte file' % (peak, size)


def test_segment_mac_is_incremental_gmac():
    from ansible_collections.confidential_ai.ack.plugins.module_utils._gocryptfs_core import SegmentMac
    key, data = os.urandom(32), os.urandom(3 * 4096 + 77)
    mac = SegmentMac(key, 5)
    for i in range(0, len(data), 1000):
        mac.update(data[i:i + 1000])
    nonce = bytes(4) + struct.pack('>Q', 5)
    assert mac.digest() == AESGCM(key).encrypt(nonce, b'', data)      # GMAC = GCM tag with empty plaintext
    other = SegmentMac(key, 5)
    other.update(data[:-1] + bytes([data[-1] ^ 1]))
    assert other.digest() != AESGCM(key).encrypt(nonce, b'', data)


def test_source_shrinking_is_detected(tmp_path):
    path = _write(tmp_path / 'p', os.urandom(5 * 4096))
    gen = g.iter_encrypt_file(path, KAT_CONTENT, chunk_blocks=1)
    next(gen)
    next(gen)
    os.truncate(path, 4096)
    with pytest.raises(g.GocryptfsError, match='shrank'):
        list(gen)


# ------------------------------------------------------------------------------------------
# Trees, manifest, idempotence

def make_tree(root):
    root.mkdir()
    (root / 'big.bin').write_bytes(os.urandom(5 * 1048576 + 17))
    (root / 'b4095').write_bytes(os.urandom(4095))
    (root / 'b4096').write_bytes(os.urandom(4096))
    (root / 'b4097').write_bytes(os.urandom(4097))
    (root / 'empty').write_bytes(b'')
    (root / 'sub' / 'deeper').mkdir(parents=True)
    (root / 'sub' / 'inner.txt').write_bytes(b'inner\n')
    (root / 'sub' / ('y' * 200)).write_bytes(b'long name')
    (root / 'sub' / 'deeper' / 'z.json').write_bytes(b'{}')
    (root / 'emptydir').mkdir()
    (root / 'link').symlink_to('sub/inner.txt')
    os.chmod(str(root / 'b4095'), 0o600)
    os.chmod(str(root / 'sub'), 0o750)
    return root


def new_cipherdir(tmp_path, password='pw'):
    path = str(tmp_path / 'cipher')
    key, created = g.open_cipherdir(path, password, scrypt_n=FAST_N)
    assert created
    return path, key


@pytest.mark.parametrize('workers', [1, 2])
def test_encrypt_tree_round_trip(tmp_path, workers):
    src = make_tree(tmp_path / 'src')
    cdir, key = new_cipherdir(tmp_path)
    stats = g.encrypt_tree(str(src), cdir, key, workers=workers, segment_blocks=64, chunk_blocks=16)
    assert stats['changed'] and stats['files_encrypted'] == 8 and stats['dirs_created'] == 3 and stats['symlinks_written'] == 1
    assert stats['bytes_encrypted'] == sum(p.stat().st_size for p in src.rglob('*') if p.is_file() and not p.is_symlink())
    assert g.verify_tree(str(src), cdir, key, workers=workers) == []
    out = tmp_path / 'out'
    g.decrypt_tree(cdir, str(out), key)
    for p in src.rglob('*'):
        q = out / p.relative_to(src)
        if p.is_symlink():
            assert os.readlink(str(q)) == os.readlink(str(p))
        elif p.is_file():
            assert q.read_bytes() == p.read_bytes()
            assert q.stat().st_mode == p.stat().st_mode
            assert q.stat().st_mtime_ns == p.stat().st_mtime_ns
        else:
            assert q.is_dir() and q.stat().st_mode == p.stat().st_mode
    # layout rules: diriv everywhere (0444), no temporary files left, long name with its .name file
    for dirpath, dirnames, filenames in os.walk(cdir):
        assert 'gocryptfs.diriv' in filenames
        assert os.stat(os.path.join(dirpath, 'gocryptfs.diriv')).st_mode & 0o777 == 0o444
        assert not [f for f in filenames if f.startswith('.cai-partial-')]
        longs = [f for f in filenames if f.startswith('gocryptfs.longname.')]
        for f in longs:
            if f.endswith('.name'):
                assert f[:-5] in filenames or f[:-5] in dirnames
                assert os.stat(os.path.join(dirpath, f)).st_mode & 0o777 == 0o444
    assert os.stat(os.path.join(cdir, 'gocryptfs.conf')).st_mode & 0o777 == 0o400


def test_multi_segment_file_with_workers(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    data = os.urandom(300 * 4096 + 1)
    (src / 'f').write_bytes(data)
    cdir, key = new_cipherdir(tmp_path)
    g.encrypt_tree(str(src), cdir, key, workers=3, segment_blocks=32, chunk_blocks=7)
    entries = g.walk_cipherdir(cdir, key)
    assert [e.rel for e in entries] == [b'f']
    assert g.decrypt_file(os.path.join(cdir, os.fsdecode(entries[0].crel)), g.Keys(key).content) == data


def cipher_state(cdir):
    """(name, inode, mtime, size) of every ciphertext entry: shows what a run touched."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(cdir):
        for f in filenames + dirnames:
            st = os.lstat(os.path.join(dirpath, f))
            out[os.path.relpath(os.path.join(dirpath, f), cdir)] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def test_idempotence_and_incremental_changes(tmp_path):
    src = make_tree(tmp_path / 'src')
    cdir, key = new_cipherdir(tmp_path)
    manifest = str(tmp_path / 'cipher.manifest.json')
    first = g.encrypt_tree(str(src), cdir, key, workers=2, manifest_path=manifest)
    assert first['files_encrypted'] == 8
    before = cipher_state(cdir)

    again = g.encrypt_tree(str(src), cdir, key, workers=2, manifest_path=manifest)
    assert not again['changed']
    assert again['files_encrypted'] == 0 and again['files_skipped'] == 8 and again['bytes_encrypted'] == 0
    assert cipher_state(cdir) == before

    check = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest, check_mode=True)
    assert not check['changed'] and check['files_encrypted'] == 0

    # change one file: it alone is re-encrypted, under the same ciphertext name
    (src / 'sub' / 'inner.txt').write_bytes(b'changed!\n')
    check = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest, check_mode=True)
    assert check['changed'] and check['files_encrypted'] == 1
    assert cipher_state(cdir) == before
    changed = g.encrypt_tree(str(src), cdir, key, workers=2, manifest_path=manifest)
    assert changed['files_encrypted'] == 1 and changed['files_skipped'] == 7
    after = cipher_state(cdir)
    assert set(after) == set(before)
    touched = [k for k in after if after[k][0] != before[k][0] and not os.path.isdir(os.path.join(cdir, k))]
    assert len(touched) == 1
    assert g.verify_tree(str(src), cdir, key) == []

    # touch without changing content: re-hashed, not re-encrypted
    st = (src / 'b4097').stat()
    os.utime(str(src / 'b4097'), ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    touched_run = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)
    assert touched_run['files_encrypted'] == 0 and touched_run['files_rehashed'] == 1 and touched_run['changed']
    assert not g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)['changed']

    # same size, new content, new mtime: re-hashed, then re-encrypted
    (src / 'b4097').write_bytes(os.urandom(4097))
    rehashed = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)
    assert rehashed['files_rehashed'] == 1 and rehashed['files_encrypted'] == 1
    assert g.verify_tree(str(src), cdir, key) == []

    # remove a file and a directory: they disappear from the CIPHERDIR
    os.remove(str(src / 'b4096'))
    os.remove(str(src / 'sub' / 'deeper' / 'z.json'))
    os.rmdir(str(src / 'sub' / 'deeper'))
    removed = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)
    assert removed['entries_removed'] == 2 and removed['files_encrypted'] == 0
    assert g.verify_tree(str(src), cdir, key) == []
    assert not g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)['changed']

    # mode change only: metadata, no encryption
    os.chmod(str(src / 'b4097'), 0o640)
    meta = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)
    assert meta['changed'] and meta['files_encrypted'] == 0 and meta['metadata_updated'] == 1
    assert g.verify_tree(str(src), cdir, key) == []

    # a type change (file -> directory) and a symlink retarget
    os.remove(str(src / 'b4095'))
    (src / 'b4095').mkdir()
    (src / 'b4095' / 'now-a-dir').write_bytes(b'x')
    os.remove(str(src / 'link'))
    (src / 'link').symlink_to('empty')
    typed = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)
    assert typed['entries_removed'] == 1 and typed['dirs_created'] == 1 and typed['symlinks_written'] == 1
    assert g.verify_tree(str(src), cdir, key) == []
    assert not g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)['changed']


def test_manifest_reveals_no_plaintext(tmp_path):
    src = make_tree(tmp_path / 'src')
    cdir, key = new_cipherdir(tmp_path)
    manifest = tmp_path / 'm.json'
    g.encrypt_tree(str(src), cdir, key, manifest_path=str(manifest))
    text = manifest.read_text()
    doc = json.loads(text)
    assert len(doc['entries']) == 8
    for word in ('big.bin', 'inner', 'sub', 'empty', 'yyyy'):
        assert word not in text
    plain_hashes = [hashlib.sha256(p.read_bytes()).hexdigest() for p in src.rglob('*') if p.is_file()]
    for h in plain_hashes:
        assert h not in text
    assert os.stat(str(manifest)).st_mode & 0o777 == 0o600


def test_tampered_or_foreign_manifest_is_ignored(tmp_path):
    src = make_tree(tmp_path / 'src')
    cdir, key = new_cipherdir(tmp_path)
    manifest = tmp_path / 'm.json'
    g.encrypt_tree(str(src), cdir, key, manifest_path=str(manifest))
    doc = json.loads(manifest.read_text())
    first = sorted(doc['entries'])[0]
    doc['entries'][first]['size'] += 1
    manifest.write_text(json.dumps(doc))
    stats = g.encrypt_tree(str(src), cdir, key, manifest_path=str(manifest))
    assert stats['manifest_ignored'] == 'its MAC does not verify' and stats['files_encrypted'] == 8
    other = g.Manifest(os.urandom(32))
    manifest.write_bytes(other.dumps())
    stats = g.encrypt_tree(str(src), cdir, key, manifest_path=str(manifest))
    assert stats['manifest_ignored'] == 'written for another master key' and stats['files_encrypted'] == 8


def test_wrong_password_changes_nothing(tmp_path):
    src = make_tree(tmp_path / 'src')
    cdir, key = new_cipherdir(tmp_path, 'right')
    g.encrypt_tree(str(src), cdir, key)
    before = cipher_state(cdir)
    with pytest.raises(g.WrongPasswordError):
        g.open_cipherdir(cdir, 'wrong')
    assert cipher_state(cdir) == before
    key2, created = g.open_cipherdir(cdir, 'right')
    assert key2 == key and not created


def test_open_cipherdir_refuses_foreign_directory(tmp_path):
    d = tmp_path / 'd'
    d.mkdir()
    (d / 'file').write_bytes(b'x')
    with pytest.raises(g.GocryptfsError, match='not empty'):
        g.open_cipherdir(str(d), 'pw')
    assert sorted(os.listdir(str(d))) == ['file']


def test_check_mode_on_missing_cipherdir_writes_nothing(tmp_path):
    src = make_tree(tmp_path / 'src')
    cdir = str(tmp_path / 'cipher')
    key, created = g.open_cipherdir(cdir, 'pw', check_mode=True)
    assert key is None and created
    stats = g.encrypt_tree(str(src), cdir, None, check_mode=True, manifest_path=str(tmp_path / 'm.json'))
    assert stats['changed'] and stats['files_encrypted'] == 8
    assert not os.path.exists(cdir) and not os.path.exists(str(tmp_path / 'm.json'))


def test_special_files_refused(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    os.mkfifo(str(src / 'fifo'))
    cdir, key = new_cipherdir(tmp_path)
    with pytest.raises(g.GocryptfsError, match='not a regular file'):
        g.encrypt_tree(str(src), cdir, key)


def test_nested_source_and_destination_refused(tmp_path):
    src = make_tree(tmp_path / 'src')
    cdir = str(src / 'inside')
    key, dummy = g.open_cipherdir(cdir, 'pw', scrypt_n=FAST_N)
    with pytest.raises(g.GocryptfsError, match='contain each other'):
        g.encrypt_tree(str(src), cdir, key)


def test_stale_partial_files_are_cleaned(tmp_path):
    src = make_tree(tmp_path / 'src')
    cdir, key = new_cipherdir(tmp_path)
    manifest = str(tmp_path / 'm.json')
    g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)
    with open(os.path.join(cdir, '.cai-partial-deadbeef'), 'wb') as handle:
        handle.write(b'half a file')
    stats = g.encrypt_tree(str(src), cdir, key, manifest_path=manifest)
    assert stats['stale_removed'] == 1 and stats['changed'] and stats['files_encrypted'] == 0
    assert not os.path.exists(os.path.join(cdir, '.cai-partial-deadbeef'))


def test_failed_worker_leaves_no_partial_files(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'a').write_bytes(os.urandom(10000))
    cdir, key = new_cipherdir(tmp_path)

    def progress(done, total):
        raise RuntimeError('stop')
    for workers in (1, 2):
        with pytest.raises(RuntimeError):
            g.encrypt_tree(str(src), cdir, key, workers=workers, progress=progress, segment_blocks=1)
        assert sorted(os.listdir(cdir)) == ['gocryptfs.conf', 'gocryptfs.diriv']
