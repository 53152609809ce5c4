"""Identity and keyring files: round trips, 0600 from creation, and every load error."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from roomkeeper.client.keys import (
    Identity,
    IdentityError,
    InsecureKeyFile,
    KeyFileExists,
    KeyFileNotFound,
    Keyring,
    MalformedKeyFile,
    RoomKeyMissing,
)
from roomkeeper.client.paths import default_identity_path
from roomkeeper.core import RoomkeeperError, encode_keyid, new_room_id

# API.md's signing vectors use this seed and keyid.
VECTOR_SEED = bytes.fromhex("9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5")
VECTOR_KEYID = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
ROOM_A = new_room_id(bytes(16))
ROOM_B = new_room_id(bytes(range(16)))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_file(path: Path, content: str | bytes, mode: int = 0o600) -> Path:
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(data)
    path.chmod(mode)
    return path


def identity_doc(**changes: object) -> str:
    doc: dict[str, object] = {"format": "roomkeeper-identity", "version": 1,
                              "keyid": VECTOR_KEYID, "seed": b64url(VECTOR_SEED)}
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not DROP})


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


DROP = object()


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 0, so a file is only private if it was created with a private mode."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any chmod: a key file must be private from its creation, never fixed up later."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("key files must not be chmod-ed after writing")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)


# --- Identity values ----------------------------------------------------------------------


def test_identity_from_the_api_vector_seed_has_the_vector_keyid() -> None:
    identity = Identity.from_seed(VECTOR_SEED)
    assert identity.keyid == VECTOR_KEYID
    assert identity.seed == VECTOR_SEED
    assert encode_keyid(identity.public_key) == VECTOR_KEYID


def test_generated_identities_are_distinct_and_sign_verifiably() -> None:
    one, two = Identity.generate(), Identity.generate()
    assert one.keyid != two.keyid
    signature = one.sign(b"hello")
    assert len(signature) == 64
    nacl.signing.VerifyKey(one.public_key).verify(b"hello", signature)


def test_from_seed_rejects_a_wrong_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.from_seed(bytes(31))


def test_repr_shows_the_keyid_and_never_the_seed() -> None:
    identity = Identity.from_seed(VECTOR_SEED)
    text = repr(identity)
    assert VECTOR_KEYID in text
    assert b64url(VECTOR_SEED) not in text and VECTOR_SEED.hex() not in text


# --- Identity files -----------------------------------------------------------------------


@pytest.mark.usefixtures("open_umask", "no_chmod")
def test_save_creates_the_file_0600_and_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "id.json"
    Identity.from_seed(VECTOR_SEED).save(path)
    assert mode_of(path) == 0o600
    assert Identity.load(path).seed == VECTOR_SEED


def test_saved_file_is_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "id.json"
    Identity.from_seed(VECTOR_SEED).save(path)
    assert json.loads(path.read_text()) == json.loads(identity_doc())


def test_save_refuses_to_overwrite_by_default(tmp_path: Path) -> None:
    path = write_file(tmp_path / "id.json", "precious")
    with pytest.raises(KeyFileExists) as info:
        Identity.generate().save(path)
    assert info.value.code == "key_file_exists" and info.value.path == path
    assert path.read_text() == "precious"


def test_save_does_not_follow_a_symlink_planted_at_the_path(tmp_path: Path) -> None:
    target = write_file(tmp_path / "elsewhere", "untouched", 0o644)
    (tmp_path / "id.json").symlink_to(target)
    with pytest.raises(KeyFileExists):
        Identity.generate().save(tmp_path / "id.json")
    assert target.read_text() == "untouched"


@pytest.mark.usefixtures("open_umask", "no_chmod")
def test_overwrite_replaces_a_world_readable_file_with_a_private_one(tmp_path: Path) -> None:
    path = tmp_path / "id.json"
    path.write_text("old")  # umask 0: this file is 0666
    assert mode_of(path) == 0o666
    Identity.from_seed(VECTOR_SEED).save(path, overwrite=True)
    assert mode_of(path) == 0o600
    assert Identity.load(path).keyid == VECTOR_KEYID
    assert sorted(p.name for p in tmp_path.iterdir()) == ["id.json"]  # no temporary left


def test_load_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileNotFound) as info:
        Identity.load(tmp_path / "nope.json")
    assert info.value.code == "key_file_not_found"
    assert isinstance(info.value, IdentityError) and isinstance(info.value, RoomkeeperError)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o700 | 0o007])
def test_load_refuses_a_file_others_may_access(tmp_path: Path, mode: int) -> None:
    path = write_file(tmp_path / "id.json", identity_doc(), mode)
    with pytest.raises(InsecureKeyFile) as info:
        Identity.load(path)
    assert info.value.code == "insecure_key_file"
    assert info.value.mode == mode
    assert "chmod 600" in info.value.message


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    path = write_file(tmp_path / "id.json", identity_doc(), mode)
    assert Identity.load(path).keyid == VECTOR_KEYID


def test_load_of_a_directory_is_malformed(tmp_path: Path) -> None:
    with pytest.raises(MalformedKeyFile):
        Identity.load(tmp_path)


def test_load_through_a_regular_file_is_unreadable(tmp_path: Path) -> None:
    # ENOTDIR: neither missing nor a permission problem, but still a typed error.
    write_file(tmp_path / "file", "x")
    with pytest.raises(IdentityError) as info:
        Identity.load(tmp_path / "file" / "id.json")
    assert info.value.code == "key_file_unreadable"


MALFORMED_IDENTITIES = {
    "not json": "seed=abc",
    "not utf-8": b"\xff\xfe{}",
    "not an object": "[1, 2]",
    "no format": identity_doc(format=DROP),
    "keyring format": identity_doc(format="roomkeeper-keyring"),
    "missing seed": identity_doc(seed=DROP),
    "missing keyid": identity_doc(keyid=DROP),
    "extra field": identity_doc(comment="hi"),
    "seed not a string": identity_doc(seed=123),
    "seed padded": identity_doc(seed=b64url(VECTOR_SEED) + "="),
    "seed standard alphabet": identity_doc(
        seed=b64url(VECTOR_SEED).replace("-", "+").replace("_", "/")),
    "seed trailing-bit alias": identity_doc(seed=b64url(VECTOR_SEED)[:-1] + "V"),
    "seed too short": identity_doc(seed=b64url(VECTOR_SEED[:31])),
    "duplicate seed": identity_doc()[:-1] + ', "seed": "' + b64url(bytes(32)) + '"}',
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "seed stray character": identity_doc(seed=b64url(VECTOR_SEED)[:-1] + "!"),
}


@pytest.mark.parametrize("content", MALFORMED_IDENTITIES.values(), ids=MALFORMED_IDENTITIES)
def test_load_rejects_malformed_content(tmp_path: Path, content: str | bytes) -> None:
    path = write_file(tmp_path / "id.json", content)
    with pytest.raises(MalformedKeyFile) as info:
        Identity.load(path)
    assert info.value.code == "malformed_key_file"


def test_the_vector_seed_encodings_used_above_are_what_they_claim() -> None:
    # Guards the malformed cases: they only test something if the seed's base64url has
    # characters that differ from the standard alphabet and a final "U".
    assert b64url(VECTOR_SEED) == "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU"
    assert base64.urlsafe_b64decode(b64url(VECTOR_SEED)[:-1] + "V=") == VECTOR_SEED
    assert b64url(VECTOR_SEED)[-1] == "U"  # so "V" differs only in unused low bits


@pytest.mark.parametrize("version", [0, 2, "1", True, None, 1.0])
def test_load_rejects_other_versions(tmp_path: Path, version: object) -> None:
    path = write_file(tmp_path / "id.json", identity_doc(version=version))
    with pytest.raises(MalformedKeyFile) as info:
        Identity.load(path)
    assert info.value.code == "unsupported_key_file_version"


def test_load_rejects_a_keyid_that_does_not_belong_to_the_seed(tmp_path: Path) -> None:
    other = Identity.generate().keyid
    path = write_file(tmp_path / "id.json", identity_doc(keyid=other))
    with pytest.raises(MalformedKeyFile) as info:
        Identity.load(path)
    assert info.value.code == "keyid_mismatch"


def test_load_rejects_an_oversized_file(tmp_path: Path) -> None:
    path = write_file(tmp_path / "id.json", b" " * (1 << 20) + identity_doc().encode())
    with pytest.raises(MalformedKeyFile, match="too large"):
        Identity.load(path)


# --- Keyring ------------------------------------------------------------------------------


def test_keyring_get_set_remove() -> None:
    ring = Keyring()
    ring.set(ROOM_A, b"a" * 32)
    ring.set(ROOM_B, b"b" * 32)
    ring.set(ROOM_A, b"c" * 32)
    assert ring.get(ROOM_A) == b"c" * 32
    assert ROOM_A in ring and len(ring) == 2
    assert ring.rooms() == sorted([ROOM_A, ROOM_B])
    ring.remove(ROOM_A)
    assert ROOM_A not in ring and ring.rooms() == [ROOM_B]


def test_a_missing_room_key_is_a_typed_error() -> None:
    ring = Keyring({ROOM_A: bytes(32)})
    with pytest.raises(RoomKeyMissing) as info:
        ring.get(ROOM_B)
    assert info.value.code == "room_key_missing" and info.value.room_id == ROOM_B
    assert isinstance(info.value, LookupError)
    with pytest.raises(RoomKeyMissing):
        ring.remove(ROOM_B)


@pytest.mark.parametrize(("room", "key"), [("Not-A-Room", bytes(32)), (ROOM_A, bytes(31))])
def test_keyring_set_validates_room_id_and_key_length(room: str, key: bytes) -> None:
    with pytest.raises(ValueError):
        Keyring().set(room, key)


def test_keyring_repr_hides_keys() -> None:
    text = repr(Keyring({ROOM_A: b"\x07" * 32}))
    assert ROOM_A in text and "Bw" not in text and "\\x07" not in text


@pytest.mark.usefixtures("open_umask", "no_chmod")
def test_keyring_save_is_0600_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    Keyring({ROOM_A: b"a" * 32, ROOM_B: b"b" * 32}).save(path)
    assert mode_of(path) == 0o600
    loaded = Keyring.load(path)
    assert loaded.get(ROOM_A) == b"a" * 32 and loaded.get(ROOM_B) == b"b" * 32
    doc = json.loads(path.read_text())
    assert doc == {"format": "roomkeeper-keyring", "version": 1,
                   "rooms": {ROOM_A: b64url(b"a" * 32), ROOM_B: b64url(b"b" * 32)}}


@pytest.mark.usefixtures("open_umask", "no_chmod")
def test_keyring_save_replaces_the_previous_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    Keyring({ROOM_A: b"a" * 32}).save(path)
    ring = Keyring.load(path)
    ring.set(ROOM_B, b"b" * 32)
    ring.save(path)
    assert Keyring.load(path).rooms() == sorted([ROOM_A, ROOM_B])
    assert mode_of(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keyring.json"]


def test_keyring_load_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileNotFound):
        Keyring.load(tmp_path / "keyring.json")
    assert len(Keyring.load(tmp_path / "keyring.json", missing_ok=True)) == 0


def test_keyring_load_refuses_a_readable_file(tmp_path: Path) -> None:
    Keyring({ROOM_A: bytes(32)}).save(tmp_path / "k.json")
    (tmp_path / "k.json").chmod(0o644)
    with pytest.raises(InsecureKeyFile):
        Keyring.load(tmp_path / "k.json", missing_ok=True)


def keyring_doc(rooms: object) -> str:
    return json.dumps({"format": "roomkeeper-keyring", "version": 1, "rooms": rooms})


MALFORMED_KEYRINGS = {
    "identity file": identity_doc(),
    "rooms not an object": keyring_doc([ROOM_A]),
    "bad room id": keyring_doc({"general": b64url(bytes(32))}),
    "short key": keyring_doc({ROOM_A: b64url(bytes(16))}),
    "key not a string": keyring_doc({ROOM_A: 7}),
    "padded key": keyring_doc({ROOM_A: b64url(bytes(32)) + "="}),
    "duplicate room": keyring_doc({ROOM_A: b64url(bytes(32))}).replace(
        "}}", f', "{ROOM_A}": "{b64url(b"x" * 32)}"}}}}'),
}


@pytest.mark.parametrize("content", MALFORMED_KEYRINGS.values(), ids=MALFORMED_KEYRINGS)
def test_keyring_load_rejects_malformed_content(tmp_path: Path, content: str) -> None:
    path = write_file(tmp_path / "k.json", content)
    with pytest.raises(MalformedKeyFile):
        Keyring.load(path)


@pytest.mark.parametrize(("environ", "expected"), [
    ({"ROOMKEEPER_IDENTITY": "/keys/me.json", "XDG_CONFIG_HOME": "/xdg"}, "/keys/me.json"),
    ({"XDG_CONFIG_HOME": "/xdg"}, "/xdg/roomkeeper/identity.json"),
    ({"XDG_CONFIG_HOME": "", "HOME": "/home/al"}, "/home/al/.config/roomkeeper/identity.json"),
    ({"HOME": "/home/al"}, "/home/al/.config/roomkeeper/identity.json"),
])
def test_default_identity_path(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str],
                               expected: str) -> None:
    for name in ("ROOMKEEPER_IDENTITY", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert default_identity_path() == Path(expected)
