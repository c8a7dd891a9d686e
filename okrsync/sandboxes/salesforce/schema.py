"""Object and field metadata of the sandbox org, and the describe payloads built from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ids import KEY_PREFIXES

# Salesforce field type -> SOAP type used in describe
_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "picklist": "xsd:string",
    "email": "xsd:string",
    "textarea": "xsd:string",
    "boolean": "xsd:boolean",
    "currency": "xsd:double",
    "double": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}

STRING_TYPES = {"id", "reference", "string", "picklist", "email", "textarea"}
NUMBER_TYPES = {"currency", "double", "percent", "int"}


@dataclass(frozen=True)
class FieldDef:
    name: str
    type: str
    label: str = ""
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    calculated: bool = False
    custom: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    length: int = 0
    auto_number: bool = False

    def describe(self) -> dict[str, Any]:
        length = self.length or (
            18 if self.type in ("id", "reference") else 255 if self.type in STRING_TYPES else 0
        )
        return {
            "aggregatable": self.type not in ("textarea",),
            "autoNumber": self.auto_number,
            "calculated": self.calculated,
            "calculatedFormula": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultedOnCreate": self.name
            in (
                "Id",
                "IsDeleted",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
                "CurrencyIsoCode",
                "OwnerId",
            ),
            "digits": 0,
            "externalId": False,
            "filterable": True,
            "groupable": self.type not in ("currency", "double", "percent", "datetime", "textarea"),
            "idLookup": self.type == "id",
            "label": self.label or self.name,
            "length": length,
            "name": self.name,
            "nillable": self.nillable,
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
                for v in self.picklist
            ],
            "precision": 18 if self.type in ("currency", "double", "percent") else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "scale": 2 if self.type in ("currency", "double", "percent") else 0,
            "soapType": _SOAP_TYPES[self.type],
            "sortable": self.type != "textarea",
            "type": self.type,
            "unique": False,
            "updateable": self.updateable,
        }


@dataclass
class ObjectDef:
    name: str
    label: str
    label_plural: str
    fields: list[FieldDef] = field(default_factory=list)
    deletable: bool = True

    def __post_init__(self) -> None:
        self.by_lower = {f.name.lower(): f for f in self.fields}
        self.relationships = {f.relationship_name.lower(): f for f in self.fields if f.relationship_name}

    @property
    def key_prefix(self) -> str:
        return KEY_PREFIXES[self.name]

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}

    def describe_global_entry(self, version: str) -> dict[str, Any]:
        return {
            "activateable": False,
            "createable": True,
            "custom": False,
            "customSetting": False,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": False,
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": self.deletable,
            "updateable": True,
            "urls": self.urls(version),
        }

    def describe(self, version: str) -> dict[str, Any]:
        out = self.describe_global_entry(version)
        out.update(
            {
                "childRelationships": [],
                "fields": [f.describe() for f in self.fields],
                "recordTypeInfos": [],
                "supportedScopes": [{"label": "All", "name": "everything"}],
            }
        )
        return out


STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
STAGE_PROBABILITY = {
    "Prospecting": 10.0,
    "Qualification": 20.0,
    "Needs Analysis": 40.0,
    "Proposal/Price Quote": 60.0,
    "Negotiation/Review": 80.0,
    "Closed Won": 100.0,
    "Closed Lost": 0.0,
}
OPP_TYPES = ("New Business", "Existing Business")
REGIONS = ("AMER", "EMEA", "APAC", "LATAM")
CURRENCIES = ("USD", "EUR")


def _system_fields(deletable: bool = True) -> list[FieldDef]:
    ro: dict[str, Any] = {"createable": False, "updateable": False, "nillable": False}
    fields = [FieldDef("Id", "id", "Record ID", **ro)]
    if deletable:
        fields.append(FieldDef("IsDeleted", "boolean", "Deleted", **ro))
    fields += [
        FieldDef("CreatedDate", "datetime", "Created Date", **ro),
        FieldDef("LastModifiedDate", "datetime", "Last Modified Date", **ro),
        FieldDef("SystemModstamp", "datetime", "System Modstamp", **ro),
    ]
    return fields


def _owner() -> FieldDef:
    return FieldDef(
        "OwnerId", "reference", "Owner ID", nillable=False, reference_to=("User",), relationship_name="Owner"
    )


def _account_ref() -> FieldDef:
    return FieldDef(
        "AccountId", "reference", "Account ID", reference_to=("Account",), relationship_name="Account"
    )


def _currency() -> FieldDef:
    return FieldDef(
        "CurrencyIsoCode", "picklist", "Currency ISO Code", nillable=False, picklist=CURRENCIES, length=3
    )


def _region() -> FieldDef:
    return FieldDef("Region__c", "picklist", "Region", custom=True, picklist=REGIONS)


def build_schema() -> dict[str, ObjectDef]:
    objs = [
        ObjectDef(
            "User",
            "User",
            "Users",
            _system_fields(deletable=False)
            + [
                FieldDef("Username", "string", "Username", nillable=False, length=80),
                FieldDef(
                    "Name",
                    "string",
                    "Full Name",
                    nillable=False,
                    createable=False,
                    updateable=False,
                    length=121,
                ),
                FieldDef("FirstName", "string", "First Name", length=40),
                FieldDef("LastName", "string", "Last Name", nillable=False, length=80),
                FieldDef("Email", "email", "Email", nillable=False, length=128),
                FieldDef("IsActive", "boolean", "Active", nillable=False),
                _region(),
                _currency(),
            ],
            deletable=False,
        ),
        ObjectDef(
            "Account",
            "Account",
            "Accounts",
            _system_fields()
            + [
                FieldDef("Name", "string", "Account Name", nillable=False),
                FieldDef(
                    "Type", "picklist", "Account Type", picklist=("Prospect", "Customer - Direct", "Partner")
                ),
                FieldDef(
                    "Industry",
                    "picklist",
                    "Industry",
                    picklist=("Technology", "Finance", "Healthcare", "Retail", "Manufacturing"),
                ),
                FieldDef("AnnualRevenue", "currency", "Annual Revenue"),
                _owner(),
                _currency(),
                _region(),
            ],
        ),
        ObjectDef(
            "Opportunity",
            "Opportunity",
            "Opportunities",
            _system_fields()
            + [
                FieldDef("Name", "string", "Name", nillable=False, length=120),
                _account_ref(),
                _owner(),
                FieldDef("StageName", "picklist", "Stage", nillable=False, picklist=STAGES),
                FieldDef("Amount", "currency", "Amount"),
                FieldDef(
                    "ExpectedRevenue",
                    "currency",
                    "Expected Amount",
                    calculated=True,
                    createable=False,
                    updateable=False,
                ),
                FieldDef("Probability", "percent", "Probability (%)"),
                FieldDef("CloseDate", "date", "Close Date", nillable=False),
                FieldDef("IsClosed", "boolean", "Closed", nillable=False, createable=False, updateable=False),
                FieldDef("IsWon", "boolean", "Won", nillable=False, createable=False, updateable=False),
                FieldDef("Type", "picklist", "Opportunity Type", picklist=OPP_TYPES),
                FieldDef(
                    "ForecastCategoryName",
                    "picklist",
                    "Forecast Category",
                    picklist=("Pipeline", "Best Case", "Commit", "Closed", "Omitted"),
                ),
                _currency(),
                _region(),
            ],
        ),
        ObjectDef(
            "Lead",
            "Lead",
            "Leads",
            _system_fields()
            + [
                FieldDef("FirstName", "string", "First Name", length=40),
                FieldDef("LastName", "string", "Last Name", nillable=False, length=80),
                FieldDef(
                    "Name",
                    "string",
                    "Full Name",
                    nillable=False,
                    createable=False,
                    updateable=False,
                    length=121,
                ),
                FieldDef("Company", "string", "Company", nillable=False),
                FieldDef("Email", "email", "Email", length=80),
                FieldDef(
                    "Status",
                    "picklist",
                    "Status",
                    nillable=False,
                    picklist=(
                        "Open - Not Contacted",
                        "Working - Contacted",
                        "Closed - Converted",
                        "Closed - Not Converted",
                    ),
                ),
                FieldDef(
                    "LeadSource",
                    "picklist",
                    "Lead Source",
                    picklist=("Web", "Phone Inquiry", "Partner", "Event"),
                ),
                FieldDef(
                    "IsConverted", "boolean", "Converted", nillable=False, createable=False, updateable=False
                ),
                FieldDef("ConvertedDate", "date", "Converted Date", createable=False, updateable=False),
                _owner(),
                _currency(),
                _region(),
            ],
        ),
        ObjectDef(
            "Case",
            "Case",
            "Cases",
            _system_fields()
            + [
                FieldDef(
                    "CaseNumber",
                    "string",
                    "Case Number",
                    nillable=False,
                    createable=False,
                    updateable=False,
                    auto_number=True,
                    length=30,
                ),
                FieldDef("Subject", "string", "Subject"),
                FieldDef("Status", "picklist", "Status", picklist=("New", "Working", "Escalated", "Closed")),
                FieldDef("Priority", "picklist", "Priority", picklist=("High", "Medium", "Low")),
                FieldDef("Origin", "picklist", "Case Origin", picklist=("Email", "Phone", "Web")),
                FieldDef("IsClosed", "boolean", "Closed", nillable=False, createable=False, updateable=False),
                FieldDef("ClosedDate", "datetime", "Closed Date", createable=False, updateable=False),
                _account_ref(),
                _owner(),
                _currency(),
                _region(),
            ],
        ),
        ObjectDef(
            "DatedConversionRate",
            "Dated Exchange Rate",
            "Dated Exchange Rates",
            _system_fields(deletable=False)
            + [
                FieldDef("IsoCode", "picklist", "ISO Code", nillable=False, picklist=CURRENCIES, length=3),
                FieldDef("ConversionRate", "double", "Conversion Rate", nillable=False),
                FieldDef("StartDate", "date", "Start Date", nillable=False),
                FieldDef("NextStartDate", "date", "Next Start Date", createable=False, updateable=False),
            ],
            deletable=False,
        ),
    ]
    return {o.name: o for o in objs}
