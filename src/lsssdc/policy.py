"""Policies and orders: the two YAML files that drive a release.

A **policy** is the agency's secrecy rules, reusable across orders: which identifiers go, how
persons are pseudonymised, which variables are quasi-identifiers or sensitive, how each is
coarsened, the thresholds (k, l, largest share suppressed, table frequency rule), which
registers may be linked and with which variables, and the delivery formats.

An **order** (beställning) is one request from one research project. It is checked against a
policy: anything the policy does not allow is refused by name, and only the requested
variables travel further (data minimisation).

Loading is strict: duplicate keys, unknown keys, wrong types, out-of-range values, unknown
variables and unquoted codes that YAML would turn into numbers (``0114`` is octal 76 in YAML
1.1) are all errors naming the file, the line and the key, collected and raised at once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from lsssdc import names, shipped
from lsssdc.errors import PolicyError, Problem, has_personnummer_shape
from lsssdc.order_check import check_order, link_problems
from lsssdc.register import variables as V
from lsssdc.register.companions import COMPANIONS
from lsssdc.strict_yaml import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_SCALAR,
    _compose,
    _line_for,
    _strings,
    _to_python,
)

POLICY_VERSIONS = (1,)
#: names that become folder or file names (order id, project id, table names): lsssdc.names
_NAME = rf"^{names.PATTERN}$"
_RESERVED_TABLE_NAMES = {
    "audit", "ledger-head", "datapackage", "manifest", "manifest.sha256", "readme", "codebook", "policy", "order",
    "metadata", "candidate", "report", "approval", "rejection", "table-audit", "table-witnesses", "data",
    "utkast-draft",
}  # fmt: skip
ORDER_VERSIONS = (1,)

#: Variables an extract may carry besides the register's own: derived from the personnummer
#: or produced by coarsening.
EXTRA_VARIABLES = ("sex", "age", "birth_year", "age_band", "lan", "kommungrupp", "pseudonym")

# what other modules import from here, wherever it is defined
__all__ = [
    "EXTRA_VARIABLES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_SCALAR",
    "ORDER_VERSIONS",
    "POLICY_VERSIONS",
    "AgeHierarchy",
    "AmountHierarchy",
    "CellKeyPolicy",
    "DateHierarchy",
    "Delivery",
    "Dominance",
    "Hierarchies",
    "KommunHierarchy",
    "LinkRequest",
    "LinkRule",
    "Order",
    "Policy",
    "Population",
    "Pseudonymisation",
    "Recipient",
    "TableRequest",
    "TablesPolicy",
    "Thresholds",
    "check_order",
    "known_variables",
    "link_problems",
    "load_order",
    "load_policy",
    "order_schema",
    "policy_schema",
]


def known_variables() -> set[str]:
    linked = {v for c in COMPANIONS.values() for v in c.variables if v not in V.BY_NAME}
    return set(V.BY_NAME) | set(EXTRA_VARIABLES) | linked


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Document(_Model):
    """A top-level file: remembers where it came from, its bytes' hash and its lines."""

    _hash: str = PrivateAttr("")
    _source: str = PrivateAttr("")
    _lines: dict = PrivateAttr(default_factory=dict)

    @property
    def hash(self) -> str:
        """SHA-256 of the file's bytes, as recorded in reports and the ledger."""
        return self._hash

    @property
    def source(self) -> str:
        return self._source


# --------------------------------------------------------------------------------------------
# policy


class Pseudonymisation(_Model):
    """How persons are represented in a delivery."""

    scheme: Literal["aes-permutation-v1"] = "aes-permutation-v1"
    output: Literal["token", "lopnummer"] = "token"
    column: StrictStr = "pseudonym"


class AgeHierarchy(_Model):
    """Age at the measurement date in bands: lower bounds of each band, the last band open."""

    cuts: Annotated[list[StrictInt], Field(min_length=1)]
    open_top: bool = True

    @model_validator(mode="after")
    def _increasing(self) -> AgeHierarchy:
        if self.cuts[0] != 0:
            raise ValueError("the first age cut must be 0")
        if any(b <= a for a, b in zip(self.cuts, self.cuts[1:], strict=False)):
            raise ValueError("age cuts must increase")
        return self


class KommunHierarchy(_Model):
    """Kommun coarsened to a level; small kommuner may be merged into the rest of their län."""

    level: Literal["kommun", "kommungrupp", "huvudgrupp", "lan", "riket"] = "lan"
    merge_below: Annotated[StrictInt, Field(ge=0)] | None = None


class AmountHierarchy(_Model):
    """Hours or days top-coded and put into bands (lower bounds)."""

    top_code: Annotated[float, Field(gt=0)] | None = None
    bands: list[Annotated[float, Field(ge=0)]] | None = None


class DateHierarchy(_Model):
    """A date delivered at a coarser precision (an exact date of death identifies). The delivered
    column says what it holds: `death_year` at year precision, `death_month` (YYYY-MM) at month
    precision, `death_date` only at day precision."""

    precision: Literal["day", "month", "year"] = "month"


class Hierarchies(_Model):
    """How each variable is coarsened before disclosure control; a variable not named here is delivered as it is."""

    age: AgeHierarchy | None = None
    kommun: KommunHierarchy | None = None
    beslutande_kommun: KommunHierarchy | None = None
    boendekommun: KommunHierarchy | None = None
    hours_personlig_assistans: AmountHierarchy | None = None
    hours_ledsagarservice: AmountHierarchy | None = None
    hours_avlosarservice: AmountHierarchy | None = None
    days_korttidsvistelse: AmountHierarchy | None = None
    death_date: DateHierarchy | None = None


class Dominance(_Model):
    """The (n, k) dominance rule for sums: a cell is hidden when its n largest contributors make up more than k percent of it."""

    n: Annotated[StrictInt, Field(ge=1)] = 1
    k: Annotated[float, Field(gt=0, lt=100)] = 85.0


class Thresholds(_Model):
    """The numbers the secrecy review holds a release to."""

    k: Annotated[StrictInt, Field(ge=2)] = 5
    l: Annotated[StrictInt, Field(ge=1)] = 1  # noqa: E741 - the established name
    max_suppressed_share: Annotated[float, Field(ge=0, le=1)] = 0.05
    table_frequency: Annotated[StrictInt, Field(ge=1)] = 3
    zero_is_safe: bool = True
    dominance: Dominance | None = None
    p_percent: Annotated[float, Field(gt=0, lt=100)] | None = None
    #: largest share of a population group (year, sex, age band, region) a delivery may cover
    max_presence: Annotated[float, Field(gt=0, le=1)] | None = None


class LinkRule(_Model):
    """One register the policy allows to link, on which key, with which variables."""

    key: Literal["personnummer", "pseudonym"] = "personnummer"
    variables: Annotated[list[StrictStr], Field(min_length=1)]
    duplicates: Literal["refuse", "first", "last"] = "refuse"


class Delivery(_Model):
    """What the delivered package contains."""

    formats: Annotated[list[Literal["csv", "parquet", "stata", "spss", "sas"]], Field(min_length=1)] = [
        "csv",
        "parquet",
    ]
    #: how many reviewers, none of them the preparer, must approve before delivery (four eyes)
    reviewers: Annotated[StrictInt, Field(ge=1, le=5)] = 1
    #: a folder outside the work area where every decision's signed ledger head is exported
    checkpoints: StrictStr | None = None


class CellKeyPolicy(_Model):
    """The perturbation table of the cell key method: noise of at most ``max_noise`` either way
    with variance ``variance``, counts 1 to ``smallest_published - 1`` never published."""

    max_noise: Annotated[StrictInt, Field(ge=1, le=10)] = 5
    variance: Annotated[float, Field(gt=0)] = 4.0
    smallest_published: Annotated[StrictInt, Field(ge=1, le=10)] = 3


class TablesPolicy(_Model):
    """What a table order may ask for, and how its tables are protected: ``suppression`` hides
    small cells and enough others (the default); ``cell_key`` publishes every cell of count tables
    with noise drawn from the persons' record keys (the same persons, the same noise, in every
    table and year)."""

    dimensions: Annotated[list[StrictStr], Field(min_length=1)]
    units: list[Literal["persons", "insatser"]] = ["persons", "insatser"]
    magnitudes: list[StrictStr] = []
    protection: Literal["suppression", "cell_key"] = "suppression"
    cell_key: CellKeyPolicy = CellKeyPolicy()


class Policy(_Document):
    """The agency's secrecy rules for one kind of release."""

    policy_version: StrictInt
    name: StrictStr
    description: StrictStr = ""
    kind: Literal["microdata", "tables"] = "microdata"
    identifiers: list[StrictStr] = ["personnummer"]
    pseudonymisation: Pseudonymisation = Pseudonymisation()
    allowed_variables: Annotated[list[StrictStr], Field(min_length=1)]
    quasi_identifiers: list[StrictStr] = []
    #: quasi-identifiers in the order their values are suppressed (first = first suppressed)
    suppression_order: list[StrictStr] = []
    sensitive: list[StrictStr] = []
    #: delivered variables that neither identify nor reveal, each with the reason why
    safe: dict[StrictStr, StrictStr] = {}
    hierarchies: Hierarchies = Hierarchies()
    thresholds: Thresholds = Thresholds()
    linkage: dict[StrictStr, LinkRule] = {}
    delivery: Delivery = Delivery()
    tables: TablesPolicy | None = None


# --------------------------------------------------------------------------------------------
# order


class Recipient(_Model):
    """Who receives the delivery."""

    name: StrictStr
    organisation: StrictStr
    email: StrictStr | None = None


class Population(_Model):
    """Who is in the extract: persons with any of these insatser (all persons when empty)."""

    insatser: list[StrictStr] = []
    personkrets: list[Literal["1", "2", "3"]] = []


class LinkRequest(_Model):
    """One register the order asks to link, and its variables."""

    register_name: StrictStr = Field(alias="register")
    variables: Annotated[list[StrictStr], Field(min_length=1)]


class TableRequest(_Model):
    """One table the order asks for."""

    name: Annotated[StrictStr, Field(pattern=_NAME)]
    dimensions: Annotated[list[StrictStr], Field(min_length=1)]

    @model_validator(mode="after")
    def _not_reserved(self) -> TableRequest:
        # a table's files are <name>.csv/.xlsx/.json next to the package's own files
        if (
            self.name.lower() in _RESERVED_TABLE_NAMES
            or names.has_digits_like_an_identifier(self.name)
            or not names.is_name(self.name)
        ):
            raise ValueError(f"the table name '{self.name}' is reserved or looks like an identifier")
        return self

    unit: Literal["persons", "insatser"] = "persons"
    magnitude: StrictStr | None = None


class Order(_Document):
    """One request (beställning) from one research project."""

    order_version: StrictInt
    order_id: Annotated[StrictStr, Field(pattern=_NAME)]
    diarienummer: StrictStr
    project_id: Annotated[StrictStr, Field(pattern=_NAME)]
    ethics_approval: StrictStr | None = None
    recipient: Recipient
    purpose: StrictStr
    policy: StrictStr
    years: Annotated[list[StrictInt], Field(min_length=1)]
    population: Population = Population()
    variables: list[StrictStr] = []
    linkages: list[LinkRequest] = []
    tables: list[TableRequest] = []

    @model_validator(mode="after")
    def _names_are_names(self) -> Order:
        for field_name in ("order_id", "project_id"):
            if not names.is_name(getattr(self, field_name)):
                raise ValueError(f"{field_name} must be {names.RULE}")
        return self


# --------------------------------------------------------------------------------------------
# loading: a file read as strict YAML (lsssdc.strict_yaml), then checked by its model


def _validate(model: type[_Model], data: Any, lines: dict[tuple, int], source: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "string_pattern_mismatch" and loc[-1] in ("order_id", "project_id", "name"):
                msg = f"must be {names.RULE} (it names a folder or file)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            elif err["type"] in ("string_type",) and isinstance(err.get("input"), bool | int | float):
                msg = "must be text; put the value in quotes"
            problems.append(Problem("schema", f"{key}: {msg}", file=source, line=_line_for(loc, lines)))
        raise PolicyError(problems) from None


def _load(
    path: str | os.PathLike[str],
    model: type[_Document],
    version_key: str,
    versions: tuple[int, ...],
    name_fields: tuple[str, ...] = (),
):
    p = Path(path)
    source = str(p)
    try:
        with p.open("rb") as fh:  # bounded: a huge file or a device is refused, not read
            raw = fh.read(MAX_BYTES + 1)
    except OSError:
        raise PolicyError(Problem("no_file", "cannot read the file", file=source)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(Problem("not_utf8", "the file is not UTF-8 text", file=source)) from None
    node = _compose(text, source)
    lines: dict[tuple, int] = {}
    problems: list[Problem] = []
    data = _to_python(node, (), lines, problems, source)
    if problems:
        raise PolicyError(problems)
    if not isinstance(data, dict):
        raise PolicyError(
            Problem("schema", "the file must be a mapping of keys to values", file=source, line=1)
        )
    version = data.get(version_key)
    if version not in versions:
        raise PolicyError(
            Problem(
                "version",
                f"{version_key} must be one of {', '.join(map(str, versions))}",
                file=source,
                line=lines.get((version_key,), 1),
            )
        )
    # an identifier typed into free text (a purpose, a name) would travel into reports and packages
    problems += [
        Problem(
            "identifier_in_text",
            f"{'.'.join(str(k) for k in where) or '(top level)'} holds something shaped like a personnummer",
            file=source,
            line=_line_for(where, lines),
            hint="free text must not hold identifiers",
        )
        for where, text in _strings(data)
        if has_personnummer_shape(text)
    ]
    if problems:
        raise PolicyError(problems)
    # unknown variable names are reported together with schema problems, not after them
    name_problems = [
        p
        for field in name_fields
        if isinstance(data.get(field), list)
        for p in _check_variables([v for v in data[field] if isinstance(v, str)], (field,), lines, source)
    ]
    try:
        obj = cast(_Document, _validate(model, data, lines, source))
    except PolicyError as exc:
        raise PolicyError(exc.problems + name_problems) from None
    obj._hash = "sha256:" + hashlib.sha256(raw).hexdigest()
    obj._lines = lines
    obj._source = source
    return obj, name_problems


def _check_variables(names: list[str], where: tuple, lines: dict[tuple, int], source: str) -> list[Problem]:
    known = known_variables()
    return [
        Problem(
            "unknown_variable",
            f"'{n}' is not a variable of the LSS register",
            file=source,
            line=_line_for((*where, i), lines),
            hint="see lsssdc.register.variables",
        )
        for i, n in enumerate(names)
        if n not in known
    ]


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load and check a policy file (or a shipped policy by name); every problem at once, with its line."""
    policy, problems = _load(
        shipped.resolve(path, "policy"),
        Policy,
        "policy_version",
        POLICY_VERSIONS,
        ("allowed_variables", "quasi_identifiers", "sensitive", "identifiers"),
    )
    lines, source = policy._lines, policy._source
    allowed = set(policy.allowed_variables)
    for i, n in enumerate(policy.suppression_order):
        if n not in policy.quasi_identifiers:
            problems.append(
                Problem(
                    "not_allowed",
                    f"suppression_order names '{n}', which is not a quasi-identifier",
                    file=source,
                    line=_line_for(("suppression_order", i), lines),
                )
            )
    for field in ("quasi_identifiers", "sensitive"):
        for i, n in enumerate(getattr(policy, field)):
            if n not in allowed and n in known_variables():
                problems.append(
                    Problem(
                        "not_allowed",
                        f"{field} names '{n}', which allowed_variables does not",
                        file=source,
                        line=_line_for((field, i), lines),
                    )
                )
    for reg, rule in policy.linkage.items():
        comp = COMPANIONS.get(reg)
        if comp is None:
            problems.append(
                Problem(
                    "unknown_register",
                    f"linkage names an unknown register '{reg}'",
                    file=source,
                    line=_line_for(("linkage", reg), lines),
                    hint="known registers: " + ", ".join(COMPANIONS),
                )
            )
            continue
        for i, v in enumerate(rule.variables):
            if v not in comp.variables:
                problems.append(
                    Problem(
                        "unknown_variable",
                        f"register '{reg}' has no variable '{v}'",
                        file=source,
                        line=_line_for(("linkage", reg, "variables", i), lines),
                    )
                )
    if policy.kind == "tables" and policy.tables is None:
        problems.append(Problem("schema", "a tables policy needs a 'tables' section", file=source, line=1))
    if policy.tables is not None:
        problems += _check_variables(
            [d for d in policy.tables.dimensions if d != "insats"], ("tables", "dimensions"), lines, source
        )
    if problems:
        raise PolicyError(problems)
    return policy


def load_order(path: str | os.PathLike[str]) -> Order:
    """Load an order file or a shipped example order by name (its shape only; see :func:`check_order`)."""
    order, problems = _load(
        shipped.resolve(path, "order"), Order, "order_version", ORDER_VERSIONS, ("variables",)
    )
    lines, source = order._lines, order._source
    for i, y in enumerate(order.years):
        if not V.FIRST_YEAR <= y <= V.LAST_YEAR:
            problems.append(
                Problem(
                    "bad_year",
                    f"year {y} is outside the register ({V.FIRST_YEAR}-{V.LAST_YEAR})",
                    file=source,
                    line=_line_for(("years", i), lines),
                )
            )
    for i, ins in enumerate(order.population.insatser):
        if ins not in V.INSATSER:
            problems.append(
                Problem(
                    "unknown_variable",
                    f"population names '{ins}', which is not an insats",
                    file=source,
                    line=_line_for(("population", "insatser", i), lines),
                )
            )
    if problems:
        raise PolicyError(problems)
    return order


def policy_schema() -> dict[str, Any]:
    """JSON Schema of the policy file, for editors and the generated reference."""
    return Policy.model_json_schema()


def order_schema() -> dict[str, Any]:
    return Order.model_json_schema()


# --------------------------------------------------------------------------------------------
# what each key means: shown in the JSON Schema and the generated policy reference


_DESCRIPTIONS: dict[type[_Model], dict[str, str]] = {
    Policy: {
        "policy_version": "Version of the policy file format; only the versions listed are accepted.",
        "name": "Name of the policy; an order names it in its `policy` key.",
        "description": "What the policy is for, in one or two sentences (shown in the reviewer's report).",
        "kind": "`microdata` for research extracts, `tables` for tables of counts and sums.",
        "identifiers": "Direct identifiers: removed from every delivery and refused by name in an order.",
        "pseudonymisation": "How persons are represented in a delivery.",
        "allowed_variables": "Every variable an order may ask for; anything else is refused by name.",
        "quasi_identifiers": "Variables an outsider may know about a person; k-anonymity is measured on "
        "them (after coarsening), counting distinct persons, with the year when there are several.",
        "suppression_order": "Quasi-identifiers in the order their values are suppressed (first = first "
        "suppressed); the others follow in reverse order of quasi_identifiers, the year last.",
        "sensitive": "Variables whose value must not be learned from a person's group (l-diversity).",
        "safe": "Delivered variables that neither identify nor reveal, each with the reason why; every "
        "delivered variable must be a quasi-identifier, sensitive or safe, or the release is refused.",
        "hierarchies": "How each variable is coarsened before disclosure control.",
        "thresholds": "The numbers the secrecy review holds a release to.",
        "linkage": "Registers that may be linked, by register name.",
        "delivery": "What the delivered package contains.",
        "tables": "What a table order may ask for (needed when `kind` is `tables`).",
    },
    Pseudonymisation: {
        "scheme": "Pseudonym construction: AES-256 keyed permutation with a key per project, version 1.",
        "output": "`token`: the pseudonym text, stable within the project; `lopnummer`: a running "
        "number per person instead, valid within one delivery only.",
        "column": "Name of the person column in the delivery.",
    },
    AgeHierarchy: {
        "cuts": "Lower bounds of the age bands in completed years at the measurement date, increasing from 0.",
        "open_top": "The last cut starts an open band (e.g. `65+`).",
    },
    KommunHierarchy: {
        "level": "Level the kommun code is delivered at: kommun, kommungrupp (SKR 2017), huvudgrupp, län or riket.",
        "merge_below": "Kommuner with fewer inhabitants than this are merged into the rest of their län "
        "(code `<län>R`); only meaningful at the kommun level.",
    },
    AmountHierarchy: {
        "top_code": "Values above this are set to it (hours or days per month).",
        "bands": "Lower bounds of bands below the top code; with bands the amount is delivered as a category.",
    },
    DateHierarchy: {"precision": "Precision the date is delivered at."},
    Thresholds: {
        "k": "Every combination of quasi-identifiers must be shared by at least k persons.",
        "l": "Each sensitive variable must show at least l distinct values in every class (1: no requirement).",
        "max_suppressed_share": "Largest share of records that may have a suppressed value; above it the "
        "release is refused.",
        "table_frequency": "Table cells (and small counts in reports) with fewer persons than this are hidden.",
        "zero_is_safe": "A zero cell may be published (that nobody has an insats is not about a person).",
        "dominance": "The (n, k) dominance rule for sums in tables.",
        "p_percent": "p% rule for sums: the second largest contributor must not estimate the largest "
        "within p percent.",
        "max_presence": "Largest share of a population group (year, sex, age band, region as delivered) the "
        "delivery may cover (delta-presence); needs a population register (prepare --population). "
        "Not set: measured when a population is given, never enforced.",
    },
    Dominance: {"n": "Number of largest contributors.", "k": "Percentage of the cell they may make up."},
    LinkRule: {
        "key": "Key to link on: personnummer (inside the agency, before pseudonymisation) or pseudonym.",
        "variables": "Variables of that register an order may ask for.",
        "duplicates": "A person twice in the linked register: refuse the release, or keep the first or last row.",
    },
    Delivery: {
        "formats": "Formats of the delivered data, each with its labels: csv (data.csv, described by "
        "datapackage.json), parquet (labels in its schema), stata (data.dta with Swedish labels, "
        "data-labels-en.do adds English), spss (data.sav with Swedish labels, data-labels-en.sps "
        "for English), sas (data.xpt, SAS transport version 8, and data-formats.sas with the value "
        "labels in both languages).",
        "reviewers": "How many reviewers, none of them the preparer, must approve before delivery.",
        "checkpoints": "A folder outside the work area where approve, reject and deliver export the ledger's "
        "signed head after their entry (a command's --checkpoints or LSSSDC_CHECKPOINTS comes first).",
    },
    TablesPolicy: {
        "dimensions": "Variables (and `insats`) a table may be broken down by.",
        "units": "What a count may count: persons, or person-insats pairs.",
        "magnitudes": "Amount variables whose sums may be tabulated.",
    },
    Order: {
        "order_version": "Version of the order file format.",
        "order_id": "The order's number; names the candidate and the delivery.",
        "diarienummer": "Registration number of the request.",
        "project_id": "The research project; pseudonyms are specific to it.",
        "ethics_approval": "Registration number of the ethics approval.",
        "recipient": "Who receives the delivery.",
        "purpose": "What the data will be used for.",
        "policy": "Name of the policy the order is checked against.",
        "years": "Register years asked for.",
        "population": "Who is in the extract.",
        "variables": "Variables asked for; only these are delivered.",
        "linkages": "Registers to link.",
        "tables": "Tables asked for (table orders).",
    },
    Recipient: {
        "name": "The person receiving the delivery.",
        "organisation": "Their organisation.",
        "email": "Contact address.",
    },
    Population: {
        "insatser": "Persons with any of these insatser in a year (all persons when empty).",
        "personkrets": "Only these groups under 1 § LSS (all when empty).",
    },
    LinkRequest: {
        "register_name": "A register the policy's `linkage` allows.",
        "variables": "Variables to bring from it.",
    },
    TableRequest: {
        "name": "File name of the table.",
        "dimensions": "What the table is broken down by.",
        "unit": "What a cell counts.",
        "magnitude": "An amount variable to sum instead of counting.",
    },
}


def _describe_models() -> None:
    for model, texts in _DESCRIPTIONS.items():
        for name, text in texts.items():
            model.model_fields[name].description = text
    models: tuple[type[_Model], ...] = (*_DESCRIPTIONS, Hierarchies)
    for rebuilt in models:
        rebuilt.model_rebuild(force=True)


_describe_models()
