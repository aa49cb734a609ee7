"""The services' shared library (services/mlops_serving): the one secrets reader every image
uses, the settings bases over it, the cache metadata, and how `deployer build` ships it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from mlops_serving.registry import ModelInfo
from mlops_serving.secrets import SecretFileError, read_secret, read_secrets
from mlops_serving.settings import ServiceSettings, SettingsError
from pydantic import SecretStr
from svcutil import SERVICES

from deployer.build_context import LIBRARY_DIR, BuildContext, library_for


def test_plain_file_blank_and_relative_secrets(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-file\n")
    (tmp_path / "blank").write_text("\n")
    assert read_secret({"K": " plain "}, "K") == "plain"
    assert read_secret({"K_FILE": str(tmp_path / "key")}, "K") == "from-file"
    # Blank means unset, plain or file; a blank plain value falls through to the file.
    assert read_secret({"K": "  "}, "K") is None
    assert read_secret({"K_FILE": str(tmp_path / "blank")}, "K") is None
    assert read_secret({"K": "", "K_FILE": str(tmp_path / "key")}, "K") == "from-file"
    # A bare name is a Docker secret's: looked up under the secrets directory.
    assert read_secret({"K_FILE": "key"}, "K", secrets_dir=tmp_path) == "from-file"
    assert read_secrets({"A": "1", "B_FILE": str(tmp_path / "key")}, ["A", "B", "C"]) == {
        "A": "1", "B": "from-file"}


def test_secret_errors_name_the_variable_never_the_content(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("s3cr3t")
    with pytest.raises(SecretFileError, match="both K and K_FILE are set") as both:
        read_secret({"K": "other", "K_FILE": str(tmp_path / "key")}, "K")
    assert "s3cr3t" not in str(both.value) and "other" not in str(both.value)
    with pytest.raises(SecretFileError,
                       match=r"K_FILE=nope \(.*/nope\): cannot read the file"):
        read_secret({"K_FILE": "nope"}, "K", secrets_dir=tmp_path)


class _Strict(ServiceSettings):
    token: SecretStr | None = None


class _Lenient(_Strict):
    secret_errors_fatal = False


def test_settings_read_any_field_from_a_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "t").write_text("TOKVAL-7f3c\n")
    monkeypatch.setenv("TOKEN_FILE", str(tmp_path / "t"))
    settings = _Strict()
    assert settings.token is not None and settings.token.get_secret_value() == "TOKVAL-7f3c"
    assert "TOKVAL-7f3c" not in repr(settings)
    monkeypatch.setenv("TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="TOKEN_FILE=.*missing: cannot read the file"):
        _Strict()
    # A service that runs without the secret reports the problem instead of failing.
    lenient = _Lenient()
    assert lenient.token is None
    assert "missing: cannot read the file" in lenient.secret_errors["token"]


def test_cache_metadata_of_the_older_layout_is_read() -> None:
    meta = {"name": "m", "version": "3", "alias": "champion", "run_id": "r", "metrics": {},
            "source": "registry", "class_names": ["a", "b"]}
    info = ModelInfo.from_meta(meta, "cache")
    assert info.source == "cache" and info.metadata == {"class_names": ["a", "b"]}
    again = ModelInfo.from_meta({**meta, "class_names": None, "metadata": {"k": 1}}, "registry")
    assert again.metadata["k"] == 1


def test_build_context_carries_the_library(tmp_path: Path) -> None:
    service = SERVICES / "sklearn-model"
    library = library_for(service)
    assert library == SERVICES / LIBRARY_DIR
    context = BuildContext.scan(service, library=library)
    buffer = io.BytesIO()
    context.write_tar(buffer)
    with tarfile.open(fileobj=buffer) as tar:
        names = set(tar.getnames())
    assert {"Dockerfile", "sklearn_model/main.py", "mlops_serving/secrets.py",
            "mlops_serving/image-setup.sh", "certs"} <= names
    assert not any("__pycache__" in n for n in names)
    # The content hash covers the library: a change there rebuilds every image using it.
    copy = tmp_path / "services"
    (copy / "svc").mkdir(parents=True)
    (copy / "svc" / "Dockerfile").write_text("FROM scratch\n")
    (copy / LIBRARY_DIR).mkdir()
    (copy / LIBRARY_DIR / "x.py").write_text("A = 1\n")
    first = BuildContext.scan(copy / "svc", library=library_for(copy / "svc")).digest("b", {})
    (copy / LIBRARY_DIR / "x.py").write_text("A = 2\n")
    second = BuildContext.scan(copy / "svc", library=library_for(copy / "svc")).digest("b", {})
    assert first != second
    assert library_for(tmp_path / "elsewhere" / "svc") is None  # a stand-alone context
