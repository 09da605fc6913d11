"""`dlnet artifacts fetch` against a stand-in of SDF's apt repository served on loopback.

The stand-in is a real apt repository: .debs built with dpkg-deb, indexed and released with
apt-ftparchive, InRelease clear-signed with a throwaway gpg key. Never the internet.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlnet.artifacts import ArtifactsError, Fetcher, Source, Unreachable
from dlnet.cli import main

pytestmark = pytest.mark.skipif(not shutil.which("apt-ftparchive") or not shutil.which("gpgv"),
                                reason="needs apt-utils and gpgv (make deps installs them)")

VERSIONS = {"stellar-core": "19.14.0", "stellar-horizon": "2.26.1"}
REPORTS = {"stellar-core": "v19.14.0", "stellar-horizon": "horizon-v2.26.1"}


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), "--pinentry-mode", "loopback", "--passphrase", "",
                           *args], capture_output=True, text=True, check=True)


AGENTS: list[Path] = []


@pytest.fixture(autouse=True)
def _stop_gpg_agents() -> Iterator[None]:
    yield
    while AGENTS:
        subprocess.run(["gpgconf", "--homedir", str(AGENTS.pop()), "--kill", "gpg-agent"], capture_output=True,
                       check=False)


def _key(home: Path, name: str) -> str:
    home.mkdir(mode=0o700, parents=True)
    AGENTS.append(home)
    _gpg(home, "--quick-gen-key", f"{name} <{name}@test.invalid>", "ed25519", "sign", "never")
    out = _gpg(home, "--with-colons", "--list-keys").stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))


def _deb(pool: Path, package: str, version: str, reports: str) -> None:
    root = pool / f"{package}-build"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    binary = root / "usr" / "bin" / package
    binary.write_text(f"#!/bin/sh\n[ \"$1\" = version ] && echo {reports}\n")
    binary.chmod(0o755)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\nMaintainer: test <t@test.invalid>\n"
        f"Description: stand-in of SDF's {package}\n")
    deb = pool / f"{package}_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], capture_output=True, check=True)
    shutil.rmtree(root)


class Repo:
    def __init__(self, root: Path, url: str, fingerprint: str, gnupg: Path) -> None:
        self.root, self.url, self.fingerprint, self.gnupg = root, url, fingerprint, gnupg

    def index(self) -> None:
        """(Re)build Packages, Release and InRelease as SDF's repository has them."""
        dists = self.root / "dists" / "jammy"
        binary = dists / "stable" / "binary-amd64"
        binary.mkdir(parents=True, exist_ok=True)
        packages = subprocess.run(["apt-ftparchive", "packages", "pool"], cwd=self.root, capture_output=True,
                                  check=True).stdout
        (binary / "Packages").write_bytes(packages)
        (binary / "Packages.gz").write_bytes(gzip.compress(packages))
        release = subprocess.run(
            ["apt-ftparchive", "-o", "APT::FTPArchive::Release::Suite=jammy", "-o",
             "APT::FTPArchive::Release::Components=stable", "release", "."],
            cwd=dists, capture_output=True, check=True).stdout
        (dists / "Release").write_bytes(release)
        (dists / "InRelease").unlink(missing_ok=True)
        _gpg(self.gnupg, "--clearsign", "-o", str(dists / "InRelease"), str(dists / "Release"))


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    root = tmp_path / "repo"
    (root / "pool").mkdir(parents=True)
    gnupg = tmp_path / "gnupg"
    fpr = _key(gnupg, "sdf-stand-in")
    (root / "SDF.asc").write_text(_gpg(gnupg, "--armor", "--export").stdout)
    _deb(root / "pool", "stellar-core", "19.14.0-1139.5664eff4.jammy", REPORTS["stellar-core"])
    _deb(root / "pool", "stellar-core", "19.13.0-1100.aaaa.jammy", "v19.13.0")
    _deb(root / "pool", "stellar-horizon", "2.26.1-239", REPORTS["stellar-horizon"])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    r = Repo(root, f"http://127.0.0.1:{server.server_address[1]}", fpr, gnupg)
    r.index()
    yield r
    server.shutdown()


def _fetch(repo: Repo, dest: Path, **kw: object) -> list:
    return Fetcher(Source(url=repo.url, **kw), dest).fetch(dict(VERSIONS))  # type: ignore[arg-type]


def test_fetches_the_pinned_versions_verified(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "artifacts"
    got = _fetch(repo, dest, fingerprint=repo.fingerprint)
    assert {f.package: f.package_version for f in got} == {
        "stellar-core": "19.14.0-1139.5664eff4.jammy", "stellar-horizon": "2.26.1-239"}
    for name, reports in REPORTS.items():
        out = subprocess.run([str(dest / name), "version"], capture_output=True, text=True, check=True).stdout
        assert out.strip() == reports
    sums = (dest / "SHA256SUMS").read_text()
    for f in got:
        assert hashlib.sha256(f.path.read_bytes()).hexdigest() in sums
    assert (dest / ".apt-key-fingerprint").read_text().split() == [repo.fingerprint]
    # A re-run finds the pinned versions in place and downloads nothing.
    assert not any(f.downloaded for f in _fetch(repo, dest))


def test_a_package_changed_after_signing_is_refused(repo: Repo, tmp_path: Path) -> None:
    deb = next((repo.root / "pool").glob("stellar-core_19.14.0*.deb"))
    deb.write_bytes(deb.read_bytes() + b"tampered")
    with pytest.raises(ArtifactsError, match="does not match the SHA-256 the signed index names"):
        _fetch(repo, tmp_path / "artifacts")
    assert not (tmp_path / "artifacts" / "stellar-core").exists()


def test_an_index_changed_after_signing_is_refused(repo: Repo, tmp_path: Path) -> None:
    packages = repo.root / "dists" / "jammy" / "stable" / "binary-amd64" / "Packages.gz"
    packages.write_bytes(gzip.compress(gzip.decompress(packages.read_bytes()) + b"\n"))
    with pytest.raises(ArtifactsError, match="does not match the SHA-256 its signed Release names"):
        _fetch(repo, tmp_path / "artifacts")


def test_a_release_signed_by_another_key_is_refused(repo: Repo, tmp_path: Path) -> None:
    other = tmp_path / "other-gnupg"
    _key(other, "impostor")
    dists = repo.root / "dists" / "jammy"
    (dists / "InRelease").unlink()
    _gpg(other, "--clearsign", "-o", str(dists / "InRelease"), str(dists / "Release"))
    with pytest.raises(ArtifactsError, match="is not signed by the repository's key"):
        _fetch(repo, tmp_path / "artifacts")
    assert not (tmp_path / "artifacts" / "stellar-core").exists()


def test_a_key_other_than_the_pinned_fingerprint_is_refused(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(ArtifactsError, match="is not the pinned"):
        _fetch(repo, tmp_path / "artifacts", fingerprint="0" * 40)


def test_a_key_that_changed_since_the_first_fetch_is_refused(repo: Repo, tmp_path: Path) -> None:
    dest = tmp_path / "artifacts"
    _fetch(repo, dest)
    (dest / "stellar-core").unlink()
    new = tmp_path / "new-gnupg"
    _key(new, "new-key")
    (repo.root / "SDF.asc").write_text(_gpg(new, "--armor", "--export").stdout)
    repo.gnupg = new
    repo.index()
    with pytest.raises(ArtifactsError, match="signing key changed since the first fetch"):
        _fetch(repo, dest)


def test_a_version_the_repository_lacks_names_what_it_offers(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(ArtifactsError, match=r"stellar-core 19\.15\.0 is not in .*19\.14\.0-1139"):
        Fetcher(Source(url=repo.url), tmp_path / "a").fetch({"stellar-core": "19.15.0"})


def test_unreachable_repository_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(Unreachable) as e:
        Fetcher(Source(url="http://127.0.0.1:9"), tmp_path / "a").fetch(dict(VERSIONS))
    assert "\n" not in str(e.value) and "artifacts/README.md" in str(e.value)


def test_cli_fetches_the_inventory_pins_and_make_up_goes_on_when_unreachable(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STELLAR_CORE_BIN", raising=False)
    monkeypatch.delenv("HORIZON_BIN", raising=False)
    dest = tmp_path / "artifacts"
    monkeypatch.setenv("DLNET_APT_URL", "http://127.0.0.1:9")
    # `make up` (--if-missing): an unreachable repository is reported and preflight decides.
    assert main(["artifacts", "fetch", "-i", "inventories/local", "--dest", str(dest), "--if-missing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unreachable"]
    monkeypatch.setenv("DLNET_APT_URL", repo.url)
    monkeypatch.setenv("DLNET_APT_KEY_FINGERPRINT", repo.fingerprint)
    assert main(["artifacts", "fetch", "-i", "inventories/local", "--dest", str(dest), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is True and {f["package"] for f in out["fetched"]} == set(VERSIONS)
    assert main(["artifacts", "fetch", "-i", "inventories/local", "--dest", str(dest), "--if-missing", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False
