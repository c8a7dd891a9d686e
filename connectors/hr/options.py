"""The ``kind: hr`` source block (one of two systems, told apart by ``system:``) and the keys of its streams.

* ``system: bamboohr`` reads BambooHR's REST API with an API key (from an environment variable or a
  Prefect Secret block, never from the file).
* ``system: files`` reads HR exports (CSV or XLSX) dropped in a folder, with declared column types.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from connectors.base import StreamSpec

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.kit.options import validated
from okrsync.errors import did_you_mean
from okrsync.schema import FieldType

# Our column names and BambooHR field ids (aliases such as firstName, or numeric ids such as 4047).
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
FIELD_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")
# Columns the files connector adds to every row; a declared column may not take these names.
META_COLUMNS = ("_file_name", "_file_sha256", "_file_modified", "_file_line")


class TerminationTypes(BaseModel):
    """Which BambooHR termination types count as voluntary or involuntary (``terminationKind``).

    Types listed nowhere are classified by their label: one containing "involuntary" is involuntary,
    one containing "voluntary" is voluntary (BambooHR's defaults are "Resignation (Voluntary)" and
    "Termination (Involuntary)"), any other (Retirement, Death, custom types) is ``other``.
    Labels compare case-insensitively."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    voluntary: tuple[str, ...] = ()
    involuntary: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> TerminationTypes:
        both = {v.casefold() for v in self.voluntary} & {v.casefold() for v in self.involuntary}
        if both:
            raise ValueError(f"listed as both voluntary and involuntary: {', '.join(sorted(both))}")
        return self

    def kind(self, label: str | None) -> str | None:
        """``voluntary``, ``involuntary``, ``other``, or None when there is no termination type."""
        if label is None or not label.strip():
            return None
        folded = label.strip().casefold()
        if folded in {v.casefold() for v in self.voluntary}:
            return "voluntary"
        if folded in {v.casefold() for v in self.involuntary}:
            return "involuntary"
        if "involuntary" in folded:
            return "involuntary"
        if "voluntary" in folded:
            return "voluntary"
        return "other"


class BambooHrOptions(BaseModel):
    """``{kind: hr, system: bamboohr, company_domain: acme, api_key_env: BAMBOOHR_API_KEY}``."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    system: Literal["bamboohr"]
    # The company's BambooHR subdomain: acme for https://acme.bamboohr.com.
    company_domain: str
    # The API base instead of https://api.bamboohr.com/api/gateway.php/{company_domain}/v1/
    # (a private gateway, or the local sandbox).
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_secret: str | None = None
    # A PEM bundle to trust instead of the system's (relative to the project file).
    ca_bundle: str | None = None
    timeout_seconds: float = Field(default=120, gt=0, le=3600)
    # Tries after the first, for 429/503 (throttling), other 5xx answers and network errors.
    retries: int = Field(default=4, ge=0, le=20)
    retry_backoff_seconds: float = Field(default=2.0, ge=0, le=300)
    # A Retry-After longer than this fails the sync (transient) instead of holding a worker.
    max_retry_after_seconds: float = Field(default=300, ge=0, le=3600)
    # Incremental syncs fetch the changed employees' records by id, this many per report request.
    ids_per_request: int = Field(default=500, ge=1, le=10_000)
    # BambooHR field ids to request instead of the defaults, by our column name
    # (e.g. {terminationType: "1360"} when the account's alias differs).
    field_ids: dict[str, str] = Field(default_factory=dict)
    termination_types: TerminationTypes = TerminationTypes()
    # Application status labels that mean hired (applications stream: hiredDate); case does not matter.
    hired_statuses: tuple[str, ...] = Field(default=("Hired",), min_length=1)

    @field_validator("company_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9\-]{0,62}$", v):
            raise ValueError("company_domain is the subdomain of your BambooHR address: acme for "
                             "https://acme.bamboohr.com")
        return v

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^https://[A-Za-z0-9.\-\[\]:]+(:\d+)?(/[A-Za-z0-9._~\-/]*)?$", v) or "@" in v:
            raise ValueError("base_url must be https://host[:port]/path with no credentials, query or "
                             "fragment (BambooHR is reached over verified TLS only)")
        return v if v.endswith("/") else v + "/"

    @field_validator("field_ids")
    @classmethod
    def _field_ids(cls, v: dict[str, str]) -> dict[str, str]:
        for ours, theirs in v.items():
            if not FIELD_ID.match(theirs):
                raise ValueError(f"field_ids.{ours}: {theirs!r} is not a BambooHR field id")
        return v

    @model_validator(mode="after")
    def _key(self) -> BambooHrOptions:
        given = [k for k in ("api_key_env", "api_key_secret") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of api_key_env, api_key_secret (the BambooHR API key; "
                             f"given: {', '.join(given) or 'none'})")
        return self


_TYPE = re.compile(r"^(integer|decimal|float|string|date|datetime|boolean)(?:\((\d{1,2})\)|:(\d{1,2}))?$")


def parse_type(text: str) -> tuple[FieldType, int | None]:
    """``decimal(2)`` / ``decimal:2`` / ``date`` → (FieldType, scale); ValueError if not a type."""
    m = _TYPE.match(text.strip().lower()) if isinstance(text, str) else None
    scale = None if m is None else (m.group(2) or m.group(3))
    if m is None or (scale is not None and m.group(1) != "decimal"):
        raise ValueError(f"{text!r} is not a column type (integer, decimal, decimal(2), float, string, date, "
                         "datetime, boolean)")
    return FieldType(m.group(1)), int(scale) if scale is not None else None


class ColumnSpec(BaseModel):
    """One declared column: ``date``, or ``{type: date, header: "Hire Date", format: "%d.%m.%Y"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    # The column's heading in the file, when it differs from the field name.
    header: str | None = None
    # strptime format of date/datetime values (default: ISO 8601, 2026-10-01 / 2026-10-01T09:30).
    format: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        return {"type": v} if isinstance(v, str) else v

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        kind, scale = parse_type(v)
        return f"{kind.value}({scale})" if scale is not None else kind.value

    @model_validator(mode="after")
    def _format(self) -> ColumnSpec:
        if self.format is not None and self.field_type not in (FieldType.DATE, FieldType.DATETIME):
            raise ValueError("format applies to date and datetime columns only")
        if self.header is not None and not self.header.strip():
            raise ValueError("header must not be empty")
        return self

    @property
    def field_type(self) -> FieldType:
        return parse_type(self.type)[0]

    @property
    def scale(self) -> int | None:
        return parse_type(self.type)[1]


class HrFilesOptions(BaseModel):
    """``{kind: hr, system: files, folder: exports/hr, pattern: "employees_*.csv", columns: {...}}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: Literal["files"]
    # The folder the exports are dropped in (relative to the project file).
    folder: str
    # Which files of the folder are exports (a glob; .xlsx/.xlsm are read as Excel, others as CSV).
    pattern: str = "*.csv"
    # snapshot: each file is the whole population, the newest one counts. append: each file adds or
    # replaces records (an increment), applied in the order of the files' modification times.
    mode: Literal["snapshot", "append"] = "snapshot"
    # auto: a BOM if there is one, else UTF-8, else cp1252 (Windows Western European); or a codec name.
    encoding: str = "auto"
    # None: sniffed among , ; tab and |.
    delimiter: str | None = None
    # XLSX: the sheet's name or 0-based position (default: the first sheet).
    sheet: str | int | None = None
    decimal_separator: Literal[".", ","] = "."
    thousands_separator: Literal["", ",", ".", " ", "'"] = ""
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    max_file_mb: float = Field(default=200, gt=0, le=4096)

    @field_validator("folder")
    @classmethod
    def _folder(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("folder must not be empty")
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        parts = v.replace("\\", "/").split("/")
        if not v.strip() or v.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", v):
            raise ValueError("pattern is a glob inside the folder, such as *.csv or hr/*.xlsx (no absolute "
                             "paths, no '..')")
        return v

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        if v == "auto":
            return v
        try:
            info = codecs.lookup(v)
        except LookupError:
            raise ValueError(f"{v!r} is not a known encoding (auto, utf-8, cp1252, latin-1, utf-16, ...)") \
                from None
        if not getattr(info, "_is_text_encoding", True):
            raise ValueError(f"{v!r} is not a text encoding")
        return v

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v in "\"\r\n" or v.isalnum()):
            raise ValueError("delimiter is one character such as ',', ';', '|' or a tab")
        return v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        for name in v:
            if name in META_COLUMNS or name.startswith("_file_"):
                raise ValueError(f"{name!r} is a column okrsync adds itself ({', '.join(META_COLUMNS)})")
            if not NAME.match(name):
                raise ValueError(f"{name!r} is not a field name (a letter, then letters, digits or _); give "
                                 "the file's heading as `header:`")
        headers = [spec.header or name for name, spec in v.items()]
        dupes = sorted({h for h in headers if headers.count(h) > 1})
        if dupes:
            raise ValueError(f"two columns read the same heading: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _separators(self) -> HrFilesOptions:
        if self.thousands_separator and self.thousands_separator == self.decimal_separator:
            raise ValueError("thousands_separator and decimal_separator must differ")
        if self.delimiter is not None and self.delimiter == self.decimal_separator:
            numeric = (FieldType.DECIMAL, FieldType.FLOAT)
            if any(c.field_type in numeric for c in self.columns.values()):
                raise ValueError("delimiter and decimal_separator must differ")
        return self


class _System(BaseModel):
    system: Literal["bamboohr", "files"]


SYSTEMS: dict[str, type[BambooHrOptions] | type[HrFilesOptions]] = {
    "bamboohr": BambooHrOptions, "files": HrFilesOptions}


class HrOptions(BaseModel):
    """The source block of ``kind: hr``: ``system: bamboohr`` or ``system: files``, then that system's keys
    (validated by :class:`BambooHrOptions` or :class:`HrFilesOptions`, kept as ``settings``).

    Errors keep the location of the key they are about (so the project file names its line), and an unknown
    key lists the keys of the source's own system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system: Literal["bamboohr", "files"]
    settings: BambooHrOptions | HrFilesOptions

    @model_validator(mode="wrap")
    @classmethod
    def _by_system(cls, data: Any, handler: Callable[[Any], HrOptions]) -> HrOptions:
        if isinstance(data, BambooHrOptions | HrFilesOptions):
            return handler({"system": data.system, "settings": data})
        if not isinstance(data, Mapping) or "settings" in data:
            return handler(data)
        system = data.get("system")
        model = SYSTEMS.get(system) if isinstance(system, str) else None
        if model is None:
            _System.model_validate({"system": system} if "system" in data else {})  # says what is wrong
            raise AssertionError("unreachable")  # pragma: no cover
        try:
            settings = model.model_validate(dict(data))
        except ValidationError as exc:
            raise _located(exc, model, str(system)) from None
        return handler({"system": system, "settings": settings})


def _located(exc: ValidationError, model: type[BaseModel], system: str) -> ValidationError:
    """The system model's errors at their own keys; an unknown key lists that system's keys."""
    allowed = sorted({"kind", *model.model_fields})
    errors: list[Any] = []
    for e in exc.errors(include_url=False):
        if e["type"] == "extra_forbidden" and len(e["loc"]) == 1:
            key = str(e["loc"][0])
            other = next((s for s, m in SYSTEMS.items() if s != system and key in m.model_fields), None)
            if other:
                why = f"{key!r} is a key of system {other}, not {system}"
            else:
                why = (f"unknown key {key!r}{did_you_mean(key, allowed, n=1)} (allowed for system {system}: "
                       f"{', '.join(allowed)})")
            errors.append({"type": "value_error", "loc": e["loc"], "input": e["input"],
                           "ctx": {"error": ValueError(why)}})
        else:
            errors.append({k: v for k, v in e.items() if k in ("type", "loc", "input", "ctx")})
    return ValidationError.from_exception_data(model.__name__, errors, hide_input=True)


class HrStreamOptions(BaseModel):
    """A stream of an hr source. BambooHR streams name their report (``report: employees``, or the applicant
    tracking lists ``applications`` and ``jobs``); a files
    source's columns are declared on the source, so its streams take no key of their own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    report: Literal["employees", "applications", "jobs"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _source_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in data:
                owner = next((s for s, m in SYSTEMS.items() if key in m.model_fields), None)
                if owner is not None and key not in cls.model_fields and key != "system":
                    raise ValueError(f"{key!r} goes in the source block (system {owner}), not in a stream")
        return data


def stream_options(source: str, stream: StreamSpec) -> HrStreamOptions:
    """The stream's hr keys, validated (a ConfigError naming the stream otherwise)."""
    return validated(HrStreamOptions, stream.options, where=f"source {source!r}, stream {stream.name!r}",
                     hint="a BambooHR stream takes `report: employees | applications | jobs`; a files "
                     "stream takes no key of its own (its columns are declared on the source)")
