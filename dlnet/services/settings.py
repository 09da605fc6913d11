"""Typed configuration of the services, read from one YAML file per service (rendered by its role).

Secrets are never in the file itself: each is a `*_file` path to a 0600 file (mounted into the
container), read once at start. A missing or unreadable secret file is a clear DlnetError.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from stellar_sdk import Keypair, StrKey

from dlnet.errors import DlnetError

_CODE = re.compile(r"^[A-Za-z0-9]{1,12}$")


def read_secret(path: Path | None, what: str) -> str:
    """The stripped content of a secret file; never echoes the content in errors."""
    if path is None:
        raise DlnetError(f"{what}: no file configured — set the *_file path in the service config")
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise DlnetError(f"{what}: cannot read {path} ({exc.strerror}) — check the mount and its mode") from None
    if not value:
        raise DlnetError(f"{what}: {path} is empty — expected the secret on the first line")
    return value


def _account(v: str) -> str:
    if not StrKey.is_valid_ed25519_public_key(v):
        raise ValueError(f"expected a Stellar account id (G..., 56 characters), got {v!r}")
    return v


Account = Annotated[str, AfterValidator(_account)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Strict):
    # libpq connection string without the password, e.g. "host=pg1 port=5432 dbname=dlnet user=dlnet".
    dsn: str = Field(min_length=1)
    password_file: Path | None = None
    pool_min: int = Field(default=1, ge=1)
    pool_max: int = Field(default=8, ge=1, le=100)

    @field_validator("dsn")
    @classmethod
    def _no_password(cls, v: str) -> str:
        if re.search(r"(^|\s)password\s*=", v) or re.search(r"://[^/@]*:[^/@]*@", v):
            raise ValueError("the dsn must not carry a password: put it in password_file")
        return v

    def conninfo(self) -> str:
        if self.password_file is None:
            return self.dsn
        pw = read_secret(self.password_file, "database password").replace("\\", "\\\\").replace("'", "\\'")
        return f"{self.dsn} password='{pw}'"


class ServiceSettings(_Strict):
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8000, ge=1, le=65535)
    network_passphrase: str = Field(min_length=1)
    database: DatabaseSettings
    # Requests larger than this are refused with 413 before they are read.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Public endpoints: requests per minute per client address (token bucket); 0 disables.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Bearer token for the admin/operator API (a file holding it).
    admin_token_file: Path | None = None


class CurrencySettings(_Strict):
    code: str
    issuer: Account
    desc: str = ""
    regulated: bool = False
    approval_server: str | None = None
    approval_criteria: str | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not _CODE.match(v):
            raise ValueError(f"expected an asset code of 1-12 letters/digits, got {v!r}")
        return v


class ValidatorEntry(_Strict):
    alias: str
    display_name: str
    public_key: Account
    host: str
    history: str | None = None


class FederationSettings(ServiceSettings):
    home_domain: str = Field(min_length=1)
    # Public base URL of this server, written as FEDERATION_SERVER (+ /federation) in stellar.toml.
    public_url: str = Field(min_length=1)
    org_name: str = ""
    accounts: list[Account] = []
    currencies: list[CurrencySettings] = []
    validators: list[ValidatorEntry] = []
    # Optional pointers to the compliance service, published in stellar.toml.
    web_auth_endpoint: str | None = None
    signing_key: Account | None = None
    kyc_server: str | None = None


class DlcRules(_Strict):
    asset_code: str = "DLC"
    issuer: Account
    # Largest single DLC transfer the approval server signs (in DLC, decimal string).
    max_amount: str = "1000000"
    # Account partners stake DLC to; a partner flagged malicious (paper Sec. 4.3) must stake
    # stake_base * penalty_factor ** strikes before its stake is approved.
    stake_account: Account | None = None
    stake_base: str = "100"
    penalty_factor: str = "2"
    # What a KYC approval sets on the participant's DLC trustline. "maintain_liabilities" (regulated, SEP-8):
    # the account keeps its DLC and its offers but the ledger refuses every new DLC offer or transfer unless
    # this service wraps it in authorize -> operation -> back to maintain-liabilities (POST /tx-approve answers
    # "revised"). "authorized": the trustline is fully authorized, /tx-approve only co-signs.
    approve_to: Literal["authorized", "maintain_liabilities"] = "authorized"


class ComplianceSettings(ServiceSettings):
    home_domain: str = Field(min_length=1)
    web_auth_domain: str = Field(min_length=1)
    horizon_url: str = Field(min_length=1)
    ipfs_api_url: str = Field(min_length=1)
    dlc: DlcRules
    # SEP-10 server key (signs challenges); JWT secret; KYC key-encryption key (64 hex chars);
    # the DLC issuer's seed (authorizes trustlines, claws back, signs approved transfers).
    signing_key_file: Path
    jwt_secret_file: Path
    kyc_kek_file: Path
    issuer_seed_file: Path
    challenge_timeout: int = Field(default=300, ge=30, le=3600)
    jwt_ttl: int = Field(default=3600, ge=60, le=86400)


class BridgeAccount(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,30}$")
    seed_file: Path


class BridgeSettings(ServiceSettings):
    horizon_url: str = Field(min_length=1)
    accounts: list[BridgeAccount] = Field(min_length=1)
    # Signs webhook payloads (HMAC-SHA256).
    webhook_secret_file: Path
    # Follow incoming payments of the held accounts (poll interval, seconds).
    follow: bool = True
    # Where to start following an account the bridge has no cursor for yet: "now" (only new payments)
    # or "start" (the account's whole history, each payment delivered once).
    follow_from: Literal["now", "start"] = "now"
    poll_interval: float = Field(default=1.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_backoff_base: float = Field(default=0.5, gt=0)
    webhook_timeout: float = Field(default=5.0, gt=0)
    base_fee: int = Field(default=100, ge=100)
    # Upper time bound of each transaction (seconds from signing): an envelope not applied by then never
    # will be, which lets a retry settle it as failed.
    tx_timeout: int = Field(default=60, ge=10, le=86400)


_KINDS: dict[str, type[ServiceSettings]] = {
    "federation": FederationSettings,
    "compliance": ComplianceSettings,
    "bridge": BridgeSettings,
}


def load(kind: str, path: str | Path) -> ServiceSettings:
    """Read and validate one service's config file; errors name the field and the file."""
    cls = _KINDS.get(kind)
    if cls is None:
        raise DlnetError(f"unknown service {kind!r} — expected one of {', '.join(_KINDS)}")
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise DlnetError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DlnetError(f"{path} is not valid YAML: {exc}") from None
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]
        raise DlnetError("\n".join(lines)) from None


def keypair_from_file(path: Path, what: str) -> Keypair:
    seed = read_secret(path, what)
    try:
        return Keypair.from_secret(seed)
    except Exception:  # never echo the seed
        raise DlnetError(f"{what}: {path} does not hold a valid Stellar secret seed (S...)") from None
