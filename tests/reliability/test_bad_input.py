"""Bad input meets a study that already holds images and votes.

Each bad image, zip, vote file, model file and ferml data file must get a message that
names the problem, and must leave every stored test set, image (and its file), vote and
vote event as it was. Cases the app tests already cover on an empty database are listed
in docs/reliability.md; these add the stored study, the exact messages, the command
line and the cases those tests do not try.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from django.conf import settings
from django.core.management.base import CommandError
from django.test import Client
from PIL import Image as PILImage

from annotator.models import Image
from ferml import cli
from ferml.checkpoint import make_checkpoint, save_checkpoint
from ferml.labels import FER7
from ferml.models import create_model, get_entry
from ferml.preprocess import Preprocessor
from tests.annotator.helpers import png_bytes, run, write_faces
from tests.annotator.test_importing import huge_png_header

from .conftest import STUDY, snapshot

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def command_error(*args) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


# --- images -------------------------------------------------------------------------------


def bad_images(good_png: bytes) -> dict[str, tuple[bytes, str]]:
    """file name -> (content, the exact reason the import gives)."""
    face = PILImage.open(io.BytesIO(good_png))
    tiff, gif = io.BytesIO(), io.BytesIO()
    face.save(tiff, format="TIFF")
    face.save(gif, format="GIF", save_all=True, append_images=[face.point(lambda v: 255 - v)])
    not_an_image = "not an image (no image format recognised)"
    return {
        "notes.png": (b"these are not the faces you are looking for\n", not_an_image),
        "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"/>', not_an_image),
        "empty.png": (b"", "empty file (0 bytes)"),
        "truncated.png": (good_png[: len(good_png) // 2],
                          "damaged or truncated image (image file is truncated)"),
        "bomb.png": (huge_png_header(), "an image bomb: its dimensions are far too large"),
        "poster.png": (huge_png_header(9000, 9000),
                       "9000 x 9000 pixels is over the limit of 50,000,000 pixels (an image bomb?)"),
        "scan.tif": (tiff.getvalue(), "unsupported image format TIFF; accepted: PNG, JPEG, GIF, WEBP, BMP"),
        "blink.gif": (gif.getvalue(), "animated GIF; only still images can be labelled"),
        "bell\a.png": (good_png, "the name contains control characters"),
    }


def test_bad_images_are_named_and_the_stored_study_is_untouched(study, tmp_path):
    good = png_bytes(np.full((48, 48), 90, dtype=np.uint8))
    folder = tmp_path / "bad-images"
    folder.mkdir()
    cases = bad_images(good)
    for name, (data, _) in cases.items():
        (folder / name).write_bytes(data)
    odd = os.fsencode(folder) + b"/caf\xe9.png"  # latin-1 bytes: not a UTF-8 name
    with open(odd, "wb") as fileobj:
        fileobj.write(good)
    before = snapshot()
    out, err = run("import_testset", str(folder), "--name", STUDY)
    assert out.strip() == f"Imported 0 image(s) into test set '{STUDY}' ({len(cases) + 1} bad)."
    lines = set(err.splitlines())
    for name, (_, reason) in cases.items():
        assert f"bad file {name}: {reason}" in lines
    assert "bad file caf\ufffd.png: the file name is not valid UTF-8; rename it" in lines
    assert snapshot() == before


# --- zips ---------------------------------------------------------------------------------


def test_unsafe_zip_entries_are_refused_and_stored_files_stay(study, tmp_path, fer_faces):
    good = write_faces(tmp_path / "new", fer_faces[120:123], subfolders=False)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("inner.png", next(iter(good.values())))
    archive = tmp_path / "mixed.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for key, data in good.items():
            z.writestr(key, data)
        z.writestr("../escape.png", png_bytes(fer_faces[130].pixels))
        z.writestr("/etc/absolute.png", png_bytes(fer_faces[131].pixels))
        z.writestr("C:/Windows/drive.png", png_bytes(fer_faces[132].pixels))
        z.writestr("..\\windows-escape.png", png_bytes(fer_faces[133].pixels))
        z.writestr("deeper/nested.zip", inner.getvalue())
        z.writestr("disguised.png", inner.getvalue())
        z.writestr("locked.png", png_bytes(fer_faces[135].pixels))
        z.writestr("x" * 501 + ".png", png_bytes(fer_faces[134].pixels))
    mark_encrypted(archive, "locked.png")
    before = snapshot()
    out, err = run("import_testset", str(archive), "--name", STUDY)
    assert f"Imported 3 image(s) into test set '{STUDY}' (6 bad, 2 nested zip)." == out.strip()
    lines = set(err.splitlines())
    assert {
        "bad file ../escape.png: the path leaves the zip's folder (..); refused",
        "bad file ..\\windows-escape.png: the path leaves the zip's folder (..); refused",
        "bad file /etc/absolute.png: absolute path in the zip; entries must be relative paths",
        "bad file C:/Windows/drive.png: absolute path in the zip; entries must be relative paths",
        "bad file locked.png: the entry is encrypted",
        f"bad file {'x' * 501}.png: the path is longer than 500 characters",
        "skipped deeper/nested.zip: a zip inside the zip; unpack it and import it on its own",
        "skipped disguised.png: a zip inside the zip; unpack it and import it on its own",
    } <= lines
    after = snapshot()
    assert set(before["images"]) <= set(after["images"]) and len(after["images"]) == len(before["images"]) + 3
    del after["images"], before["images"]
    assert after == before
    # Stored files are named by content hash under MEDIA_ROOT: a ../ entry cannot escape it.
    media = Path(settings.MEDIA_ROOT).resolve()
    assert all(Path(image.file.path).resolve().is_relative_to(media) for image in Image.objects.all())
    assert not list(tmp_path.parent.rglob("escape.png")) and not list(media.parent.rglob("escape.png"))


def mark_encrypted(path: Path, name: str) -> None:
    """Set the 'encrypted' flag of ``name`` in both its headers (zipfile cannot write one)."""
    data = bytearray(path.read_bytes())
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = data.find(signature)
        while data[at + name_at: at + name_at + len(name)] != name.encode():
            at = data.find(signature, at + 1)
        struct.pack_into("<H", data, at + flag_at, struct.unpack_from("<H", data, at + flag_at)[0] | 0x1)
    path.write_bytes(bytes(data))


def deflated_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes, built in 1 MiB steps, and its CRC."""
    compressor, chunk, crc = zlib.compressobj(9, zlib.DEFLATED, -15), b"\0" * 2**20, 0
    parts = []
    for _ in range(size // 2**20):
        parts.append(compressor.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    return b"".join(parts) + compressor.flush(), crc


def lying_zip(path: Path, name: str, size: int, declared: int) -> Path:
    """A zip whose headers say ``name`` unpacks to ``declared`` bytes; it unpacks to ``size``."""
    packed, crc = deflated_zeros(size)
    raw = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(packed), declared,
                        len(raw), 0) + raw
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(packed),
                          declared, len(raw), 0, 0, 0, 0, 0, 0) + raw
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(packed), 0)
    path.write_bytes(local + packed + central + end)
    return path


def test_a_zip_whose_headers_understate_an_entry_is_never_inflated_in_full(study, tmp_path, monkeypatch):
    """The size limits read the zip's headers; reading must then stop at the declared size.

    ``ZipFile.read`` inflates up to 1 GiB before trimming to the declared size, so a
    600 KiB zip could take gigabytes of memory: the import must read entries bounded.
    """
    inflated = []
    real = zipfile._get_decompressor

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def decompress(self, data, max_length=0):
            out = self.inner.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(zipfile, "_get_decompressor", lambda kind: Counting(real(kind)))
    archive = lying_zip(tmp_path / "liar.zip", "face.png", 32 * 2**20, declared=1000)
    before = snapshot()
    out, err = run("import_testset", str(archive), "--name", STUDY)
    assert "bad file face.png: cannot be read (Bad CRC-32 for file 'face.png')" in err
    assert out.strip() == f"Imported 0 image(s) into test set '{STUDY}' (1 bad)."
    assert sum(inflated) < 2**20, f"inflated {sum(inflated):,} bytes for an entry that declares 1,000"
    assert snapshot() == before


def write_zip(path: Path, entries: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("case", ["zip bomb", "empty zip", "folders only", "not a zip", "cut-off zip"])
def test_a_whole_zip_that_cannot_be_used_is_refused_and_stores_nothing(study, tmp_path, fer_faces, case):
    path = tmp_path / "upload.zip"
    if case == "zip bomb":
        write_zip(path, {"face.png": b"\0" * (11 * 2**20)})
        packed = zipfile.ZipFile(path).infolist()[0].compress_size
        message = (f"{path} looks like a zip bomb: {packed:,} bytes unpack to 11,534,336 "
                   "(more than 100x); refused.")
    elif case == "empty zip":
        write_zip(path, {})
        message = f"The zip {path} is empty: it holds no files."
    elif case == "folders only":
        write_zip(path, {"negative/": b"", "positive/": b""})
        message = f"The zip {path} is empty: it holds no files."
    elif case == "not a zip":
        path.write_text("image,annotator,label\n")
        message = f"{path} is not a zip file (or it is damaged); give a folder or a .zip."
    else:
        faces = write_faces(tmp_path / "f", fer_faces[140:143])
        whole = write_zip(tmp_path / "whole.zip", faces).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
        message = f"{path} is not a zip file (or it is damaged); give a folder or a .zip."
    before = snapshot()
    assert command_error("import_testset", str(path), "--name", STUDY) == message
    assert snapshot() == before


def test_a_zip_of_zips_imports_nothing_and_says_why(study, tmp_path, fer_faces):
    faces = write_faces(tmp_path / "f", fer_faces[150:152], subfolders=False)
    inner = write_zip(tmp_path / "inner.zip", faces)
    outer = write_zip(tmp_path / "outer.zip", {"part1.zip": inner.read_bytes()})
    before = snapshot()
    out, err = run("import_testset", str(outer), "--name", STUDY)
    assert out.strip() == f"Imported 0 image(s) into test set '{STUDY}' (1 nested zip)."
    assert err.strip() == "skipped part1.zip: a zip inside the zip; unpack it and import it on its own"
    assert snapshot() == before


def test_a_bad_zip_uploaded_on_the_web_is_a_form_error(client, study, tmp_path, django_user_model):
    client.force_login(django_user_model.objects.get(username="boss"))
    bomb = write_zip(tmp_path / "bomb.zip", {"face.png": b"\0" * (11 * 2**20)})
    before = snapshot()
    with bomb.open("rb") as fileobj:
        response = client.post("/staff/import/", {"zip_file": fileobj, "name": STUDY, "min_face": "0"})
    assert response.status_code == 200
    assert "looks like a zip bomb" in response.content.decode()
    assert snapshot() == before


def test_a_zip_of_nothing_but_bad_files_creates_no_test_set(study, tmp_path, client, django_user_model):
    junk = write_zip(tmp_path / "junk.zip", {"notes.png": b"not a face\n", "empty.png": b"",
                                               "__MACOSX/._notes.png": b"resource fork"})
    before = snapshot()
    assert command_error("import_testset", str(junk), "--name", "fresh") == (
        f"Nothing was imported from {junk}: none of its files is an image that can be labelled, "
        "so test set 'fresh' was not created.\n"
        "  bad file notes.png: not an image (no image format recognised)\n"
        "  bad file empty.png: empty file (0 bytes)\n"
        "  ignored __MACOSX/._notes.png")
    assert snapshot() == before
    client.force_login(django_user_model.objects.get(username="boss"))
    with junk.open("rb") as fileobj:
        response = client.post("/staff/import/", {"zip_file": fileobj, "min_face": "0"})
    assert response.status_code == 200
    assert ("Nothing was imported from junk.zip: none of its files is an image that can be labelled, "
            "so test set &#x27;junk&#x27; was not created.") in response.content.decode()
    assert str(tmp_path) not in response.content.decode()  # the upload's name, no server path
    assert snapshot() == before


@pytest.mark.parametrize("field, extra", [("zip_file", {"min_face": "0"}), ("csv_file", {"testset": STUDY})])
def test_an_upload_over_the_size_limit_is_refused_as_it_arrives(study, tmp_path, fer_faces, settings,
                                                                django_user_model, field, extra):
    settings.UPLOAD_MAX_BYTES = 20_000
    client = Client(enforce_csrf_checks=True)  # the token, sent before the file, still arrives
    client.force_login(django_user_model.objects.get(username="boss"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                      client.get("/staff/import/").content.decode()).group(1)
    big = io.BytesIO(os.urandom(60_000))
    big.name = "big.zip" if field == "zip_file" else "votes.csv"
    before = snapshot()
    response = client.post("/staff/import/", {"csrfmiddlewaretoken": token, field: big, **extra})
    assert response.status_code == 413
    size = int(response.wsgi_request.META["CONTENT_LENGTH"])
    assert (f"The upload is {size:,} bytes, over this server&#x27;s limit of 20,000 bytes "
            "(UPLOAD_MAX_BYTES); nothing was imported.") in response.content.decode()
    assert snapshot() == before
    small = write_zip(tmp_path / "small.zip", write_faces(tmp_path / "f", fer_faces[160:162]))
    assert small.stat().st_size < 20_000
    with small.open("rb") as fileobj:  # under the limit, an upload imports as before
        response = client.post("/staff/import/", {"csrfmiddlewaretoken": token, "zip_file": fileobj,
                                                  "name": "small", "min_face": "0"})
    assert response.status_code == 200 and "Imported 2 image(s) into test set &#x27;small&#x27;" in (
        response.content.decode())


@pytest.mark.parametrize("limit, data, message", [
    ({"DATA_UPLOAD_MAX_MEMORY_SIZE": 1000}, {"name": "x" * 5000},
     "The request was refused: its form fields are larger than this server accepts "
     "(DATA_UPLOAD_MAX_MEMORY_SIZE, 1,000 bytes); nothing was stored."),
    ({"DATA_UPLOAD_MAX_NUMBER_FIELDS": 5}, {f"field{n}": "x" for n in range(10)},
     "The request was refused: it has more form fields than this server accepts "
     "(DATA_UPLOAD_MAX_NUMBER_FIELDS, 5); nothing was stored."),
])
def test_a_request_over_djangos_own_limits_gets_a_400_that_names_the_limit(
        study, django_user_model, settings, limit, data, message):
    for name, value in limit.items():
        setattr(settings, name, value)
    client = Client()
    client.force_login(django_user_model.objects.get(username="boss"))
    before = snapshot()
    response = client.post("/staff/import/", data)
    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == message
    assert snapshot() == before


# --- vote csv -----------------------------------------------------------------------------


def vote_files(keys: list[str]) -> dict[str, tuple[bytes, str]]:
    """case -> (file content, the problem the message must name)."""
    k0, k1 = keys[0], keys[1]
    good = f"image,annotator,label\n{k0},newbie,positive\n"
    return {
        "missing column": (f"image,annotator\n{k0},newbie\n".encode(),
                           ("lacks the column(s) label; its header line is 'image,annotator' "
                            "and must name image,annotator,label.")),
        "column twice": (b"image,annotator,label,label\n", "names the column(s) label more than once."),
        "unknown label": ((good + f"{k1},newbie,happy\n").encode(),
                          "line 3: unknown label 'happy' (use negative, neutral or positive)"),
        "label as number": ((good + f"{k1},newbie,4\n").encode(),
                            "line 3: unknown label '4' (use negative, neutral or positive)"),
        "unknown image": ((good + "ghost.png,newbie,neutral\n").encode(),
                          f"line 3: image 'ghost.png' is not in test set '{STUDY}'"),
        "path as image": ((good + "../../etc/passwd,newbie,neutral\n").encode(),
                          f"line 3: image '../../etc/passwd' is not in test set '{STUDY}'"),
        "conflicting duplicate rows": ((good + f"{k0},newbie,negative\n").encode(),
                                       (f"line 3: annotator 'newbie' labels image '{k0}' 'negative', "
                                        "but line 2 says 'positive'")),
        "contradicts a stored vote": (f"image,annotator,label\n{k0},zoe_other,positive\n".encode(),
                                      (f"line 2: annotator 'zoe_other' has already labelled image '{k0}' "
                                       "'negative', the file says 'positive' (use --overwrite to replace)")),
        "short row": ((good + f"{k1},newbie\n").encode(), "line 3: 2 field(s), but the header has 3"),
        "bad annotator name": ((good + f"{k1},new bie,neutral\n").encode(),
                               "line 3: 'new bie' is not a valid annotator name"),
        "latin-1": ((good + f"{k1},jos\u00e9,neutral\n").encode("latin-1"),
                    ("is not UTF-8 text (line 3 has bytes that are not UTF-8); save it as UTF-8 csv. "
                     "Nothing from the file was imported.")),
        "utf-16": (good.encode("utf-16"), "is not UTF-8 text (line 1 has bytes that are not UTF-8)"),
        "an image instead": (png_bytes(np.zeros((8, 8), dtype=np.uint8)), "is not UTF-8 text"),
        "empty": (b"", "is empty: it needs the header line image,annotator,label."),
    }


@pytest.fixture
def keys(study):
    # zoe_other's first image is 'negative' (see conftest), which "contradicts a stored vote" uses.
    return list(study.images.order_by("key").values_list("key", flat=True))


@pytest.mark.parametrize("case", list(vote_files(["k0", "k1"])))
def test_a_bad_vote_file_names_the_problem_and_keeps_every_stored_vote(study, keys, tmp_path, case):
    data, problem = vote_files(keys)[case]
    path = tmp_path / "votes.csv"
    path.write_bytes(data)
    before = snapshot()
    message = command_error("import_votes", str(path), "--testset", STUDY)
    assert problem in message and str(path) in message
    assert snapshot() == before


def test_identical_duplicate_rows_are_stored_once(study, keys, tmp_path):
    path = tmp_path / "votes.csv"
    path.write_text(f"image,annotator,label\n{keys[0]},newbie,neutral\n{keys[0]},newbie,neutral\n")
    before = snapshot()
    out, _ = run("import_votes", str(path), "--testset", STUDY)
    assert "1 new, 0 already stored, 1 repeated line(s) counted once" in out
    after = snapshot()
    assert set(before["votes"]) < set(after["votes"]) and len(after["votes"]) == len(before["votes"]) + 1
    assert after["events"][: len(before["events"])] == before["events"]


def test_a_bad_vote_file_uploaded_on_the_web_is_a_form_error(client, study, keys, django_user_model):
    client.force_login(django_user_model.objects.get(username="boss"))
    before = snapshot()
    upload = io.BytesIO(f"image,annotator,label\n{keys[0]},newbie,happy\n".encode())
    upload.name = "votes.csv"
    response = client.post("/staff/import/", {"csv_file": upload, "testset": STUDY})
    assert response.status_code == 200
    assert "line 2: unknown label &#x27;happy&#x27;" in response.content.decode()
    assert snapshot() == before


# --- model files --------------------------------------------------------------------------

MARKER_NAME = "pickle-ran"


class RunsCode:
    """Unpickling this runs a shell command: what a hostile "checkpoint" would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, Path]:
    """A real (untrained) bkmin checkpoint, and one bad model file of each kind."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    args = {"name": "bkmin", "num_classes": 7, "in_channels": 1, "dropout": None}
    checkpoint = make_checkpoint(create_model("bkmin", 7, 1), args, "fer7", FER7,
                                 Preprocessor(get_entry("bkmin").input_size, 1))
    files = {"good": save_checkpoint(checkpoint, folder / "bkmin.pt")}
    checkpoint["model"]["name"] = "bkstart"
    files["other architecture"] = save_checkpoint(checkpoint, folder / "other.pt")
    torch.save(torch.nn.Linear(3, 2).state_dict(), folder / "foreign.pt")
    files["foreign state dict"] = folder / "foreign.pt"
    (folder / "notes.pt").write_text("hello")
    files["text"] = folder / "notes.pt"
    (folder / "empty.pt").write_bytes(b"")
    files["empty"] = folder / "empty.pt"
    whole = files["good"].read_bytes()
    (folder / "cut.pt").write_bytes(whole[: len(whole) // 2])
    files["cut off"] = folder / "cut.pt"
    marker = folder / MARKER_NAME
    with open(folder / "evil.pt", "wb") as fileobj:
        pickle.dump({"format": "ferml-checkpoint", "payload": RunsCode(marker)}, fileobj)
    files["code-running pickle"] = folder / "evil.pt"
    torch.save({"format": "ferml-checkpoint", "payload": RunsCode(marker)}, folder / "evil-zip.pt")
    files["code-running torch.save"] = folder / "evil-zip.pt"
    return files


MODEL_REASONS = {
    "other architecture": "weights do not match architecture bkstart: Error(s) in loading state_dict",
    "foreign state dict": "not a ferml checkpoint (no 'ferml-checkpoint' marker)",
    "text": "not a ferml checkpoint (refused to load: not a file written by torch.save)",
    "empty": "not a ferml checkpoint (refused to load: the file is empty)",
    "cut off": "not a ferml checkpoint (refused to load: PytorchStreamReader failed reading zip archive: "
               "failed finding central directory)",
    "code-running pickle": "not a ferml checkpoint (refused to load: it holds Python objects other than "
                           "tensors, numbers and strings, and loading those could run code)",
}
MODEL_REASONS["code-running torch.save"] = MODEL_REASONS["code-running pickle"]


@pytest.mark.parametrize("case", list(MODEL_REASONS))
def test_a_bad_model_file_is_refused_by_the_benchmark(study, model_files, case):
    path = model_files[case]
    before = snapshot()
    message = command_error("benchmark", "--testset", STUDY, "--model", str(path))
    assert message.startswith(f"Model '{path}' cannot be loaded: {path}: ")
    assert MODEL_REASONS[case] in message
    assert "weights_only" not in message  # torch's advice to turn the safety off is not passed on
    assert not (path.parent / MARKER_NAME).exists()
    assert snapshot() == before


def score(*args) -> tuple[int, str]:
    """``python -m ferml score`` in this process: (exit status, stderr)."""
    err = io.StringIO()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = io.StringIO(), err
    try:
        code = cli.main(["score", *args])
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    return code, err.getvalue()


@pytest.mark.parametrize("case", list(MODEL_REASONS))
def test_a_bad_model_file_is_refused_by_ferml_score(model_files, fer_sample_csv, case):
    path = model_files[case]
    code, err = score("--model", str(path), "--data", str(fer_sample_csv))
    assert code == 2
    assert err.startswith(f"error: {path}: ") and MODEL_REASONS[case] in err
    assert not (path.parent / MARKER_NAME).exists()


# --- ferml data files ---------------------------------------------------------------------


def fer_rows(fer_sample_csv, n=3) -> list[dict]:
    with gzip.open(fer_sample_csv, "rt", newline="") as fileobj:
        reader = csv.DictReader(fileobj)
        rows = [next(reader) for _ in range(n)]
    return [{"emotion": r["emotion"], "pixels": r["pixels"], "Usage": r["Usage"]} for r in rows]


def write_rows(path: Path, rows: list[dict], columns=("emotion", "pixels", "Usage")) -> Path:
    with open(path, "w", newline="") as fileobj:
        writer = csv.DictWriter(fileobj, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def bad_data(folder: Path, fer_sample_csv) -> dict[str, tuple[Path, str]]:
    """case -> (data file, the exact message after 'error: ')."""
    rows = fer_rows(fer_sample_csv)
    pixels = rows[1]["pixels"].split()
    square = "expected 2304 (48x48) or another square count"
    broken = {  # file stem: (the bad second row, the problem named for line 3)
        "short": (dict(rows[1], pixels=" ".join(pixels[:-1])), f"2303 pixel values, {square}"),
        "long": (dict(rows[1], pixels=" ".join(pixels + ["17"])), f"2305 pixel values, {square}"),
        "bright": (dict(rows[1], pixels=" ".join(["300"] + pixels[1:])), "pixel values outside 0-255"),
        "words": (dict(rows[1], pixels="dark grey " * 1152), "pixels are not whole numbers"),
        "code7": (dict(rows[1], emotion="7"), "unknown emotion code 7 (0-6 expected)"),
        "minus": (dict(rows[1], emotion="-1"), "unknown emotion code -1 (0-6 expected)"),
        "word": (dict(rows[1], emotion="happy"), "emotion 'happy' is not a code 0-6"),
    }
    out = {
        stem: (write_rows(folder / f"{stem}.csv", [rows[0], row]), f"{stem}.csv line 3 (row 1): {problem}")
        for stem, (row, problem) in broken.items()
    }
    no_pixels = write_rows(folder / "nopixels.csv", rows, columns=("emotion", "Usage"))
    out["nopixels"] = (no_pixels, f"{no_pixels}: missing column(s) pixels; found emotion, Usage")
    latin = folder / "latin.csv"
    latin.write_bytes(b"emotion,pixels,Usage\n3,caf\xe9,Training\n")
    out["latin-1"] = (latin, f"{latin}: not a UTF-8 text csv (invalid continuation byte)")
    cut = folder / "cut.csv.gz"
    cut.write_bytes(gzip.compress((folder / "short.csv").read_bytes())[:60])
    ended = "Compressed file ended before the end-of-stream marker was reached"
    out["cut-off gzip"] = (cut, f"{cut}: cannot be read as csv ({ended})")
    picture = folder / "face.png"
    picture.write_bytes(png_bytes(np.zeros((48, 48), dtype=np.uint8)))
    out["an image"] = (picture, f"{picture}: not a folder, a zip, or a csv this reader knows")
    out["missing"] = (folder / "nowhere.csv", f"{folder / 'nowhere.csv'}: no such file or folder")
    return out


def test_bad_data_files_are_refused_by_ferml_score(tmp_path, model_files, fer_sample_csv):
    wrong = []
    for case, (path, message) in bad_data(tmp_path, fer_sample_csv).items():
        code, err = score("--model", str(model_files["good"]), "--data", str(path))
        if code != 2 or err.strip() != f"error: {message}":
            wrong.append(f"{case}: exit {code}, {err.strip()!r}")
    assert wrong == []


def test_the_ferml_command_exits_2_with_one_line_and_no_traceback(tmp_path, model_files, fer_sample_csv):
    """The process itself: exit status 2, 'error: ...' on stderr, never a traceback or the payload."""
    evil = model_files["code-running pickle"]
    short, short_message = bad_data(tmp_path, fer_sample_csv)["short"]
    runs = {  # both at once: each start pays for importing torch
        f"error: {evil}: {MODEL_REASONS['code-running pickle']}\n": [str(evil), str(fer_sample_csv)],
        f"error: {short_message}\n": [str(model_files["good"]), str(short)],
    }
    processes = {
        want: subprocess.Popen([sys.executable, "-m", "ferml", "score", "--model", model, "--data", data],
                               cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
        for want, (model, data) in runs.items()
    }
    for want, process in processes.items():
        out, err = process.communicate(timeout=300)
        assert (process.returncode, err) == (2, want)
        assert "Traceback" not in out + err
    assert not (evil.parent / MARKER_NAME).exists()


# --- curious query strings ----------------------------------------------------------------


def test_odd_query_strings_get_a_page_or_a_clear_400_never_a_500(
        client, study, django_user_model, monkeypatch, tmp_path):
    import ferml.modelfiles

    monkeypatch.setattr(ferml.modelfiles, "WEIGHTS_DIR", tmp_path / "no-weights")
    monkeypatch.delenv("FERML_MODEL_DIR", raising=False)
    client.force_login(django_user_model.objects.get(username="ann"))
    huge = 10**30
    for query in ["?image=abc", f"?image={huge}", "?after=-1", f"?after={huge}", "?image=1&after=x"]:
        assert client.get(f"/label/{STUDY}/{query}").status_code == 200, query
    json = {"HTTP_ACCEPT": "application/json"}
    first = study.images.first().pk
    for data, problem in [({"image": huge, "label": "neutral"}, "No such image"),
                          ({"image": "x", "label": "neutral"}, "No such image"),
                          ({"image": first, "label": "\0"}, "Unknown label"),
                          ({"image": first, "label": "neutral", "time_spent_ms": huge}, None)]:
        response = client.post(f"/label/{STUDY}/vote/", data, **json)
        if problem:
            assert response.status_code == 400 and problem in response.json()["error"], data
        else:
            assert response.status_code == 200 and response.json()["vote"]["label"] == "neutral"
    assert client.get(f"/label/{STUDY}/images/{huge}/").status_code == 404
    client.force_login(django_user_model.objects.get(username="boss"))
    for url, problem in [
        (f"/staff/export/{STUDY}/zip/?balanced=on&seed=-1", "Bad export options"),
        (f"/staff/export/{STUDY}/csv/?seed=abc", "Bad export options"),
        (f"/evaluation/{STUDY}/report.json?models=../../etc/passwd", "models"),
        (f"/evaluation/{STUDY}/report.json?holdout=nobody", "holdout"),
        (f"/evaluation/{STUDY}/report.json?labels=fer7", "labels"),
        (f"/evaluation/{STUDY}/report.json?seed=-5", "seed"),
    ]:
        response = client.get(url)
        assert response.status_code == 400 and problem in response.content.decode(), url
    assert client.get(f"/staff/export/{STUDY}/..%2F..%2Fsettings/").status_code == 404
