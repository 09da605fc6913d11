"""Fetch the official stellar-core and Horizon binaries from SDF's apt repository into artifacts/.

The chain of trust is apt's own: the repository's `InRelease` must carry a valid signature by SDF's
signing key (gpgv); it names the SHA-256 of the package index; the index names the SHA-256 of each
`.deb`; only then is a binary unpacked (dpkg-deb) and asked its version. The signing key comes from a
keyring the operator pins (DLNET_APT_KEYRING) or from the repository over HTTPS, checked against a pinned
fingerprint (DLNET_APT_KEY_FINGERPRINT) where one is given, and in every case recorded beside the
binaries at the first fetch: a key that later changes is refused.

Nothing is written to artifacts/ unless every check passed; a binary already there at the pinned
version is kept (a re-run downloads nothing).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from dlnet import compat
from dlnet.errors import DlnetError

DEFAULT_URL = "https://apt.stellar.org"
# SDF builds for Ubuntu; the jammy packages run on Debian bookworm (the kit's image base).
DEFAULT_SUITE = "jammy"
# (package, binary inside it, artifact file name)
PACKAGES = {"stellar-core": "usr/bin/stellar-core", "stellar-horizon": "usr/bin/stellar-horizon"}
KEY_RECORD = ".apt-key-fingerprint"
SUMS = "SHA256SUMS"


class ArtifactsError(DlnetError):
    """The binaries could not be fetched or verified; nothing in artifacts/ was changed."""


class Unreachable(ArtifactsError):
    """The repository cannot be reached from this host (air-gapped, proxy): supply the binaries by hand."""


@dataclass(frozen=True)
class Source:
    url: str = DEFAULT_URL
    suite: str = DEFAULT_SUITE
    component: str = "stable"
    arch: str = "amd64"
    key_url: str | None = None  # default: <url>/SDF.asc
    keyring: Path | None = None  # an operator-pinned key file (armored or binary) instead of key_url
    fingerprint: str | None = None  # pinned fingerprint of the signing key

    @classmethod
    def from_env(cls) -> Source:
        env = os.environ.get
        keyring = env("DLNET_APT_KEYRING")
        return cls(
            url=(env("DLNET_APT_URL") or DEFAULT_URL).rstrip("/"),
            suite=env("DLNET_APT_SUITE") or DEFAULT_SUITE,
            key_url=env("DLNET_APT_KEY_URL") or None,
            keyring=Path(keyring) if keyring else None,
            fingerprint=(env("DLNET_APT_KEY_FINGERPRINT") or "").replace(" ", "").upper() or None,
        )


@dataclass(frozen=True)
class Fetched:
    package: str
    package_version: str
    path: Path
    sha256: str
    downloaded: bool


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def deb822(text: str) -> list[dict[str, str]]:
    """Stanzas of a Debian control-style file (Release, Packages); continuation lines joined with \\n."""
    stanzas: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, ""
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            cur[key] = value.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def _version_key(v: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", v)]


def pick(stanzas: list[dict[str, str]], package: str, version: str, arch: str) -> dict[str, str] | None:
    """The newest build of `package` at upstream `version` (e.g. 19.14.0 -> 19.14.0-1234.abcd.jammy)."""
    found = [
        s for s in stanzas
        if s.get("Package") == package and s.get("Architecture") in (arch, "all")
        and re.match(rf"^(\d+:)?{re.escape(version)}(-|$)", s.get("Version", ""))
    ]
    return max(found, key=lambda s: _version_key(s["Version"])) if found else None


class Fetcher:
    def __init__(self, source: Source, dest: Path, *, client: httpx.Client | None = None,
                 progress: Callable[[str], None] = lambda _m: None) -> None:
        self.source = source
        self.dest = dest
        self.client = client or httpx.Client(timeout=60, follow_redirects=True)
        self.progress = progress

    def _get(self, url: str) -> bytes:
        try:
            resp = self.client.get(url)
        except httpx.HTTPError as e:
            raise Unreachable(
                f"cannot reach {url} ({type(e).__name__}): put stellar-core and stellar-horizon in "
                f"{self.dest}/ yourself (artifacts/README.md) or set STELLAR_CORE_BIN/HORIZON_BIN") from None
        if resp.status_code != 200:
            raise ArtifactsError(f"{url} answered HTTP {resp.status_code}; is {self.source.url} an apt repository?")
        return resp.content

    # --- the signing key -------------------------------------------------------------------------
    def _keyring(self, work: Path) -> Path:
        raw = self.source.keyring.read_bytes() if self.source.keyring else self._get(
            self.source.key_url or f"{self.source.url}/SDF.asc")
        key = work / "key"
        key.write_bytes(raw)
        fprs = _fingerprints(key, work)
        if not fprs:
            raise ArtifactsError("the repository's signing key file holds no OpenPGP key")
        if self.source.fingerprint and self.source.fingerprint not in fprs:
            raise ArtifactsError(
                f"signing key fingerprint {', '.join(fprs)} is not the pinned {self.source.fingerprint}"
                " (DLNET_APT_KEY_FINGERPRINT): refusing the repository")
        record = self.dest / KEY_RECORD
        if record.is_file() and record.read_text().split() != fprs:
            raise ArtifactsError(
                f"the repository's signing key changed since the first fetch (was {record.read_text().strip()},"
                f" now {' '.join(fprs)}): check with SDF, then delete {record} to accept the new key")
        keyring = work / "keyring.gpg"
        if raw.lstrip().startswith(b"-----BEGIN"):
            dearmor = subprocess.run(["gpg", "--batch", "--homedir", str(work), "--dearmor", "-o", str(keyring),
                                      str(key)], capture_output=True, check=False)
            if dearmor.returncode != 0:
                raise ArtifactsError(f"cannot read the signing key: {dearmor.stderr.decode()[-300:].strip()}")
        else:
            shutil.copy(key, keyring)
        self._fingerprints = fprs
        return keyring

    # --- the signed index ------------------------------------------------------------------------
    def _release(self, keyring: Path, work: Path) -> dict[str, str]:
        inrelease = work / "InRelease"
        inrelease.write_bytes(self._get(f"{self.source.url}/dists/{self.source.suite}/InRelease"))
        signed = work / "Release"
        proc = subprocess.run(["gpgv", "--keyring", str(keyring), "--output", str(signed), str(inrelease)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not signed.is_file():
            why = next((ln for ln in proc.stderr.splitlines() if "BAD" in ln or "No public key" in ln
                        or "not" in ln.lower()), proc.stderr.strip()[-200:])
            raise ArtifactsError(f"InRelease of {self.source.url} {self.source.suite} is not signed by the"
                                 f" repository's key: {why.removeprefix('gpgv: ')}")
        return (deb822(signed.read_text()) or [{}])[0]

    def _packages(self, release: dict[str, str]) -> list[dict[str, str]]:
        sums = {}
        for line in release.get("SHA256", "").splitlines():
            parts = line.split()
            if len(parts) == 3:
                sums[parts[2]] = (parts[0], int(parts[1]))
        base = f"{self.source.component}/binary-{self.source.arch}/Packages"
        for name, unpack in ((base + ".gz", gzip.decompress), (base, lambda b: b)):
            if name in sums:
                data = self._get(f"{self.source.url}/dists/{self.source.suite}/{name}")
                want, size = sums[name]
                if sha256(data) != want or len(data) != size:
                    raise ArtifactsError(f"{name} does not match the SHA-256 its signed Release names: refusing it")
                return deb822(unpack(data).decode())
        raise ArtifactsError(f"the signed Release of {self.source.suite} lists no {base}: wrong suite or arch?")

    # --- the packages ----------------------------------------------------------------------------
    def fetch(self, versions: dict[str, str]) -> list[Fetched]:
        """versions: package -> upstream version (stellar-core -> 19.14.0, stellar-horizon -> 2.26.1)."""
        self.dest.mkdir(parents=True, exist_ok=True)
        have = {p: v for p, v in versions.items() if binary_version(self.dest / Path(PACKAGES[p]).name) == v}
        if len(have) == len(versions):
            return [Fetched(p, v, self.dest / Path(PACKAGES[p]).name,
                            sha256((self.dest / Path(PACKAGES[p]).name).read_bytes()), False)
                    for p, v in versions.items()]
        with tempfile.TemporaryDirectory(prefix="dlnet-fetch-") as tmp:
            work = Path(tmp)
            os.chmod(work, 0o700)
            keyring = self._keyring(work)
            stanzas = self._packages(self._release(keyring, work))
            staged: list[tuple[str, str, Path]] = []
            for package, version in versions.items():
                stanza = pick(stanzas, package, version, self.source.arch)
                if stanza is None:
                    offered = sorted({s["Version"] for s in stanzas if s.get("Package") == package}, key=_version_key)
                    raise ArtifactsError(
                        f"{package} {version} is not in {self.source.url} {self.source.suite}"
                        f" ({', '.join(offered[-3:]) or 'no versions'} offered): pin a version the repository has")
                self.progress(f"{package} {stanza['Version']}")
                deb = self._get(f"{self.source.url}/{stanza['Filename']}")
                if sha256(deb) != stanza.get("SHA256") or len(deb) != int(stanza.get("Size", -1)):
                    raise ArtifactsError(
                        f"{stanza['Filename']} does not match the SHA-256 the signed index names: refusing it")
                debfile = work / f"{package}.deb"
                debfile.write_bytes(deb)
                root = work / package
                proc = subprocess.run(["dpkg-deb", "-x", str(debfile), str(root)], capture_output=True, text=True,
                                      check=False)
                binary = root / PACKAGES[package]
                if proc.returncode != 0 or not binary.is_file():
                    raise ArtifactsError(f"{package} {stanza['Version']} holds no {PACKAGES[package]}")
                binary.chmod(0o755)
                got = binary_version(binary)
                if got != version:
                    raise ArtifactsError(f"{package} {stanza['Version']} reports version {got or '(none)'},"
                                         f" not {version}")
                staged.append((package, stanza["Version"], binary))
            out = []
            for package, pkg_version, binary in staged:
                target = self.dest / binary.name
                part = target.with_suffix(".part")
                shutil.copy2(binary, part)
                part.replace(target)
                out.append(Fetched(package, pkg_version, target, sha256(target.read_bytes()), True))
            (self.dest / KEY_RECORD).write_text(" ".join(self._fingerprints) + "\n")
            (self.dest / SUMS).write_text("".join(f"{f.sha256}  {f.path.name}  # {f.package} {f.package_version}"
                                                  f" from {self.source.url} {self.source.suite}\n" for f in out))
            return out


def _fingerprints(key: Path, home: Path) -> list[str]:
    proc = subprocess.run(["gpg", "--batch", "--homedir", str(home), "--show-keys", "--with-colons", str(key)],
                          capture_output=True, text=True, check=False)
    out, primary = [], False
    for line in proc.stdout.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sub"):
            primary = fields[0] == "pub"
        elif fields[0] == "fpr" and primary:
            out.append(fields[9])
            primary = False
    return out


def binary_version(path: Path) -> str:
    """The version an artifact reports (stellar-core: "v19.14.0"; Horizon: "horizon-v2.26.1"), or ""."""
    if not path.is_file() or not os.access(path, os.X_OK):
        return ""
    try:
        proc = subprocess.run([str(path), "version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    first = (proc.stdout.strip().splitlines() or [""])[0].strip().removeprefix("horizon-")
    v = compat.parse(first)
    return ".".join(map(str, v)) if v else ""
