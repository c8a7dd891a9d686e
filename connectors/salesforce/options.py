"""The ``kind: salesforce`` source block and the keys of a Salesforce stream."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

VALIDATE = "run `okrsync validate --check-sources` to compare the stream with the object's describe"

# Object and field API names: standard (Account), custom (Region__c), namespaced (ns__Thing__c) and,
# for fields, relationship paths (Account.Owner.Name). Checked before any name reaches SOQL.
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
PATH = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}(\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")

_SECRETS = {
    "password": ("password_env", "password_secret"),
    "jwt": ("private_key_file", "private_key_env", "private_key_secret"),
    "session": ("session_id_env", "session_id_secret"),
}


class SalesforceOptions(BaseModel):
    """How to reach one org. Secrets come from environment variables, Prefect Secret blocks or (the
    JWT private key) a file; the project file holds only their names."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    auth: Literal["password", "jwt", "session"]
    # Logins go to https://{domain}.salesforce.com: login, test (sandboxes) or a My Domain ("acme.my").
    domain: str = "login"
    # Send logins here instead (a private endpoint, or the local sandbox): https://host[:port].
    login_url: str | None = None
    # The org's own URL (My Domain): required for session auth; also the base of record links.
    instance_url: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_secret: str | None = None
    security_token_env: str | None = None
    security_token_secret: str | None = None
    consumer_key: str | None = None
    private_key_file: str | None = None
    private_key_env: str | None = None
    private_key_secret: str | None = None
    session_id_env: str | None = None
    session_id_secret: str | None = None
    api_version: str = "59.0"
    # A PEM bundle to trust instead of the system's (relative to the project file).
    ca_bundle: str | None = None
    timeout_seconds: float = Field(default=120, gt=0, le=3600)
    # Extractions of more rows than this run as Bulk API 2.0 query jobs (one job, CSV pages).
    bulk_threshold: int = Field(default=50_000, ge=0)
    page_size: int = Field(default=2000, ge=200, le=2000)  # REST rows per page (Sforce-Query-Options)
    bulk_page_size: int = Field(default=50_000, ge=1, le=1_000_000)  # Bulk 2.0 maxRecords per page
    bulk_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Stop before the org's daily API usage (Sforce-Limit-Info) passes this share of its limit.
    max_api_share: float = Field(default=0.8, gt=0, le=1)
    retries: int = Field(default=4, ge=0, le=20)  # per call, for 5xx and network errors
    # Calls in flight at once to this org from one run (streams sync concurrently).
    max_parallel_calls: int = Field(default=2, ge=1, le=25)
    retry_backoff_seconds: float = Field(default=1.0, ge=0, le=300)
    # Company currency and conversion rates for `convert_currency`: "dated" reads the org's
    # DatedConversionRate; a mapping gives units of each currency per one company-currency unit.
    currency: str = "USD"
    rates: Literal["dated"] | dict[str, Decimal] = "dated"

    @field_validator("login_url", "instance_url")
    @classmethod
    def _https(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https://[A-Za-z0-9.\-]+(:\d+)?/?$", v):
            raise ValueError("must be https://host[:port] with no path")
        return v.rstrip("/") if v else v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*$", v):
            raise ValueError("domain is login, test or your My Domain name (e.g. acme.my)")
        return v

    @field_validator("currency")
    @classmethod
    def _iso(cls, v: str) -> str:
        if not CURRENCY.match(v):
            raise ValueError("currency is a three-letter ISO code such as USD")
        return v

    @field_validator("rates")
    @classmethod
    def _rates(cls, v: Any) -> Any:
        if isinstance(v, dict):
            for code, rate in v.items():
                if not CURRENCY.match(code):
                    raise ValueError(f"rates: {code!r} is not a three-letter ISO code")
                if not rate.is_finite() or rate <= 0:
                    raise ValueError(f"rates: {code} needs a positive rate")
        return v

    @model_validator(mode="after")
    def _credentials(self) -> SalesforceOptions:
        given = [k for k in _SECRETS[self.auth] if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"auth {self.auth} needs exactly one of {', '.join(_SECRETS[self.auth])} "
                             f"(given: {given or 'none'})")
        foreign = [k for a, keys in _SECRETS.items() if a != self.auth for k in keys if getattr(self, k)]
        if foreign:
            raise ValueError(f"{', '.join(foreign)} do not go with auth {self.auth}")
        if self.auth in ("password", "jwt") and not self.username:
            raise ValueError(f"auth {self.auth} needs username")
        if self.auth == "jwt" and not self.consumer_key:
            raise ValueError("auth jwt needs consumer_key (the connected app's consumer key)")
        if self.auth == "session" and not self.instance_url:
            raise ValueError("auth session needs instance_url")
        if self.auth == "password" and self.security_token_env and self.security_token_secret:
            raise ValueError("give one of security_token_env, security_token_secret")
        if not re.match(r"^\d{2}\.0$", self.api_version):
            raise ValueError("api_version looks like 59.0")
        return self


class CurrencyConversion(BaseModel):
    """``convert_currency: {fields: [Amount], date_field: CloseDate}`` adds ``Amount_USD`` (company
    currency) next to ``Amount``, converted at the rate in force on the record's date."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fields: tuple[str, ...] = Field(min_length=1)
    date_field: str | None = None  # default: the rate in force today

    @field_validator("fields")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not PATH.match(name):
                raise ValueError(f"{name!r} is not a field API name")
        return v


class SalesforceStreamOptions(BaseModel):
    """A Salesforce stream: ``object`` (standard or custom), optional pushed-down ``where`` filter
    (same shape as a metric's ``filter``), optional ``convert_currency``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    object: str
    where: dict[str, Any] | None = None
    convert_currency: CurrencyConversion | None = None

    @field_validator("object")
    @classmethod
    def _object(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"{v!r} is not an object API name such as Opportunity or Invoice__c")
        return v
