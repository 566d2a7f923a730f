"""Load, validate and model the Kie.ai catalog in models/catalog.json."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import orjson

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_PATH = REPO_ROOT / "models" / "catalog.json"
SCHEMA_PATH = REPO_ROOT / "models" / "catalog.schema.json"

# The bot's free tier and smoke tests rely on this model.
REQUIRED_MODEL_ID = "z-image"

URL_TYPES = frozenset({"image_url", "video_url", "audio_url"})
URL_SCHEMES = frozenset({"http", "https"})
# A user's Telegram upload is stored as this prefix + its file_id; the submitter uploads the
# file to Kie and sends Kie that URL instead (the Telegram file URL carries the bot token).
TELEGRAM_FILE_REF_PREFIX = "tg:"
# Only discrete or numeric fields can select a price; free text never does.
PRICEABLE_TYPES = frozenset({"enum", "bool", "int", "float"})

CATEGORY_BY_MODEL_TYPE: Mapping[str, str] = MappingProxyType(
    {
        "text_to_image": "image",
        "image_to_image": "image",
        "image_edit": "image",
        "outpaint": "image",
        "text_to_video": "video",
        "image_to_video": "video",
        "speech_to_video": "video",
        "lip_sync": "video",
        "video_editing": "video",
        "text_to_speech": "audio",
        "speech_to_text": "audio",
        "audio_to_audio": "audio",
        "text_to_audio": "audio",
        "text_to_music": "audio",
        "upscale": "upscale",
        "video_upscale": "upscale",
    }
)


class CatalogProblem(Exception):
    """Base class for every error raised by the catalog package."""


@dataclass(frozen=True, slots=True)
class CatalogIssue:
    """One thing wrong with the catalog file."""

    model_id: str | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = []
        if self.model_id is not None:
            where.append(f"model {self.model_id!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{' '.join(where)}: {self.reason}" if where else self.reason


class CatalogError(CatalogProblem):
    """Report every reason why the catalog file cannot be used."""

    def __init__(
        self,
        path: Path,
        model_id: str | None = None,
        field: str | None = None,
        reason: str | None = None,
        *,
        issues: Iterable[CatalogIssue] = (),
    ) -> None:
        collected = list(issues)
        if reason is not None:
            collected.insert(0, CatalogIssue(model_id, field, reason))
        if not collected:
            raise ValueError("CatalogError needs a reason or at least one issue")
        self.path = path
        self.issues: tuple[CatalogIssue, ...] = tuple(collected)
        super().__init__(self._render())

    @property
    def model_id(self) -> str | None:
        """Return the model named by the first issue."""
        return self.issues[0].model_id

    @property
    def field(self) -> str | None:
        """Return the field named by the first issue."""
        return self.issues[0].field

    @property
    def reason(self) -> str:
        """Return the reason of the first issue."""
        return self.issues[0].reason

    def _render(self) -> str:
        shown = _display_path(self.path)
        if len(self.issues) == 1:
            return f"{shown}: {self.issues[0]}"
        lines = "".join(f"\n  - {issue}" for issue in self.issues)
        return f"{shown}: {len(self.issues)} problems:{lines}"


class PricingError(CatalogProblem):
    """Signal that no SKU of a model prices the requested parameters."""

    def __init__(self, model_id: str, params: Mapping[str, object]) -> None:
        self.model_id = model_id
        self.params = dict(params)
        super().__init__(f"model {model_id!r}: no price for parameters {self.params!r}")


class InputError(CatalogProblem):
    """Reject a user-supplied parameter with a human-readable reason."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class LocalizedText:
    """Short user-facing text in Russian and English."""

    ru: str
    en: str

    def get(self, lang: str) -> str:
        """Return the text for lang, falling back to English."""
        return self.ru if lang == "ru" else self.en


@dataclass(frozen=True, slots=True)
class InputField:
    """One field of a model's Kie input object; default None means no default."""

    name: str
    type: str
    required: bool = False
    default: object | None = None
    values: tuple[str, ...] = ()
    item_type: str | None = None
    min: int | float | None = None
    max: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    max_items: int | None = None

    def check(self, value: object) -> object:
        """Return value cleaned for this field or raise InputError."""
        if self.type == "array":
            return self._check_array(value)
        return _check_scalar(self, self.name, self.type, value)

    def _check_array(self, value: object) -> list[object]:
        if not isinstance(value, list | tuple):
            raise InputError(self.name, f"must be a list, not {type(value).__name__}")
        if self.required and not value:
            raise InputError(self.name, "needs at least one item")
        if self.max_items is not None and len(value) > self.max_items:
            raise InputError(self.name, f"has {len(value)} items, at most {self.max_items}")
        item_type = self.item_type or "string"
        return [_check_scalar(self, f"{self.name}[{i}]", item_type, v) for i, v in enumerate(value)]


@dataclass(frozen=True, slots=True)
class Sku:
    """Kie's price in RUB per unit for one combination of parameter values."""

    params: Mapping[str, object]
    price_rub: Decimal
    unit: str
    free: bool = False


@dataclass(frozen=True, slots=True)
class Model:
    """One sellable Kie.ai model: how to call it, its inputs and its prices."""

    id: str
    kie_model: str
    endpoint: str
    category: str
    model_type: str
    title: LocalizedText
    description: LocalizedText
    inputs: tuple[InputField, ...]
    skus: tuple[Sku, ...]

    @property
    def free(self) -> bool:
        """Return whether every SKU of the model is in the free tier."""
        return all(sku.free for sku in self.skus)

    def field(self, name: str) -> InputField | None:
        """Return the input field called name, or None."""
        return next((f for f in self.inputs if f.name == name), None)

    def with_defaults(self, params: Mapping[str, object]) -> dict[str, object]:
        """Return params plus the default of every field they leave out."""
        filled = dict(params)
        for f in self.inputs:
            if filled.get(f.name) is None and f.default is not None:
                filled[f.name] = f.default
        return filled

    def validate_params(self, params: Mapping[str, object]) -> dict[str, object]:
        """Return user params checked against the inputs, with defaults filled, in field order.

        A None value counts as not given, so forms can pass unset optional fields through.
        """
        known = {f.name for f in self.inputs}
        for name in params:
            if name not in known:
                raise InputError(name, "is not a parameter of this model")
        filled = self.with_defaults(params)
        clean: dict[str, object] = {}
        for f in self.inputs:
            value = filled.get(f.name)
            if value is None:
                if f.required:
                    raise InputError(f.name, "is required")
                continue
            clean[f.name] = f.check(value)
        return clean


@dataclass(frozen=True, slots=True)
class Catalog:
    """All sellable models in file order, looked up by id."""

    models: tuple[Model, ...]
    _by_id: Mapping[str, Model] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", MappingProxyType({m.id: m for m in self.models}))

    def get(self, model_id: str) -> Model | None:
        """Return the model with this id, or None."""
        return self._by_id.get(model_id)

    def __getitem__(self, model_id: str) -> Model:
        return self._by_id[model_id]

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._by_id

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Parse and fully validate the catalog file; raise CatalogError listing every problem."""
    try:
        doc = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise CatalogError(path, reason=f"cannot read the file: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise CatalogError(path, reason=f"invalid JSON: {exc}") from exc

    issues: list[CatalogIssue] = []
    broken: set[int] = set()  # models whose shape is wrong are skipped by the semantic checks
    for error in _validator().iter_errors(doc):
        issues.append(_schema_issue(doc, error))
        where = list(error.absolute_path)
        if len(where) >= 2 and where[0] == "models" and isinstance(where[1], int):
            broken.add(where[1])
    raw_models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(raw_models, list) or not all(isinstance(m, dict) for m in raw_models):
        raise CatalogError(path, issues=issues)

    models = [_build_model(raw) for i, raw in enumerate(raw_models) if i not in broken]
    for model in models:
        issues.extend(_check_model(model))
    issues.extend(_check_ids(raw_models))
    if issues:
        raise CatalogError(path, issues=issues)
    return Catalog(tuple(models))


@functools.cache
def get_catalog() -> Catalog:
    """Return the default catalog, loaded and validated once per process."""
    return load_catalog()


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = orjson.loads(SCHEMA_PATH.read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _check_scalar(f: InputField, where: str, kind: str, value: object) -> object:
    """Return a single value checked against kind and f's limits, or raise InputError."""
    if kind == "string":
        if not isinstance(value, str):
            raise InputError(where, f"must be a string, not {type(value).__name__}")
        if f.required and not value.strip():
            raise InputError(where, "must not be empty")
        if f.min_length is not None and len(value) < f.min_length:
            raise InputError(where, f"is {len(value)} characters, at least {f.min_length}")
        if f.max_length is not None and len(value) > f.max_length:
            raise InputError(where, f"is {len(value)} characters, at most {f.max_length}")
        return value
    if kind == "enum":
        if not isinstance(value, str) or value not in f.values:
            raise InputError(where, f"{value!r} is not one of {list(f.values)!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(where, f"must be true or false, not {type(value).__name__}")
        return value
    if kind in URL_TYPES:
        if isinstance(value, str) and value.startswith(TELEGRAM_FILE_REF_PREFIX) and len(
                value) > len(TELEGRAM_FILE_REF_PREFIX):
            return value
        url = urlsplit(value) if isinstance(value, str) else None
        if url is None or url.scheme not in URL_SCHEMES or not url.netloc:
            raise InputError(where, f"must be an http(s) URL of an uploaded file, not {value!r}")
        return value
    if kind in ("int", "float"):
        return _check_number(f, where, kind, value)
    raise InputError(where, f"has unknown type {kind!r}")


def _check_number(f: InputField, where: str, kind: str, value: object) -> int | float:
    # bool is an int subclass; True must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        expected = "an integer" if kind == "int" else "a number"
        raise InputError(where, f"must be {expected}, not {type(value).__name__}")
    if kind == "int" and not isinstance(value, int):
        raise InputError(where, f"must be an integer, not {value!r}")
    if not math.isfinite(value):
        raise InputError(where, "must be a finite number")
    if f.min is not None and value < f.min:
        raise InputError(where, f"{value} is below the minimum {f.min}")
    if f.max is not None and value > f.max:
        raise InputError(where, f"{value} is above the maximum {f.max}")
    return value


def _schema_issue(doc: Any, error: jsonschema.ValidationError) -> CatalogIssue:
    where = list(error.absolute_path)
    model_id = None
    if len(where) >= 2 and where[0] == "models" and isinstance(where[1], int):
        raw = doc["models"][where[1]]
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        model_id = raw_id if isinstance(raw_id, str) else f"models[{where[1]}]"
        where = where[2:]
    if error.validator == "required" and isinstance(error.instance, dict):
        # Name the missing property itself, not its parent.
        missing = [n for n in error.validator_value if n not in error.instance]
        where = [*where, *missing[:1]]
    return CatalogIssue(model_id, _dotted(where) or None, error.message)


def _dotted(parts: Sequence[object]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _build_model(raw: Mapping[str, Any]) -> Model:
    """Return a Model from a schema-valid catalog entry."""
    inputs = tuple(
        InputField(
            name=f["name"],
            type=f["type"],
            required=f.get("required", False),
            default=f.get("default"),
            values=tuple(f.get("values", ())),
            item_type=f.get("item_type"),
            min=f.get("min"),
            max=f.get("max"),
            min_length=f.get("min_length"),
            max_length=f.get("max_length"),
            max_items=f.get("max_items"),
        )
        for f in raw["inputs"]
    )
    skus = tuple(
        Sku(
            params=MappingProxyType(dict(s["params"])),
            price_rub=Decimal(s["price_rub"]),
            unit=s["unit"],
            free=s.get("free", False),
        )
        for s in raw["skus"]
    )
    return Model(
        id=raw["id"],
        kie_model=raw["kie_model"],
        endpoint=raw["endpoint"],
        category=raw["category"],
        model_type=raw["model_type"],
        title=LocalizedText(**raw["title"]),
        description=LocalizedText(**raw["description"]),
        inputs=inputs,
        skus=skus,
    )


def _check_model(model: Model) -> list[CatalogIssue]:
    """Return the cross-field problems of one schema-valid model."""
    issues: list[CatalogIssue] = []

    def bad(where: str, reason: str) -> None:
        issues.append(CatalogIssue(model.id, where, reason))

    expected = CATEGORY_BY_MODEL_TYPE[model.model_type]
    if model.category != expected:
        bad("category", f"{model.category!r} does not match model_type {model.model_type!r}")

    seen_names: set[str] = set()
    for i, f in enumerate(model.inputs):
        if f.name in seen_names:
            bad(f"inputs[{i}].name", f"duplicate input {f.name!r}")
        seen_names.add(f.name)
        if f.min is not None and f.max is not None and f.min > f.max:
            bad(f"inputs[{i}].min", f"{f.min} is above max {f.max}")
        if f.min_length is not None and f.max_length is not None and f.min_length > f.max_length:
            bad(f"inputs[{i}].min_length", f"{f.min_length} is above max_length {f.max_length}")
        if f.default is not None:
            try:
                f.check(f.default)
            except InputError as exc:
                bad(f"inputs[{i}].default", exc.reason)

    seen_params: dict[tuple[tuple[str, object], ...], int] = {}
    for i, sku in enumerate(model.skus):
        for name, value in sku.params.items():
            where = f"skus[{i}].params.{name}"
            target = model.field(name)
            if target is None:
                bad(where, f"{name!r} is not an input of this model")
            elif target.type not in PRICEABLE_TYPES:
                bad(where, f"a {target.type} field cannot select a price")
            else:
                try:
                    target.check(value)
                except InputError as exc:
                    bad(where, exc.reason)
        key = tuple(sorted(sku.params.items(), key=lambda item: item[0]))
        if key in seen_params:
            bad(f"skus[{i}].params", f"same params as skus[{seen_params[key]}]")
        seen_params.setdefault(key, i)
    return issues


def _check_ids(raw_models: Sequence[Mapping[str, Any]]) -> list[CatalogIssue]:
    """Return problems with model ids across the whole catalog."""
    issues: list[CatalogIssue] = []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(raw_models):
        model_id = raw.get("id")
        if not isinstance(model_id, str):
            continue
        if model_id in first_index:
            reason = f"duplicate id (models[{first_index[model_id]}] and models[{i}])"
            issues.append(CatalogIssue(model_id, "id", reason))
        first_index.setdefault(model_id, i)
    if REQUIRED_MODEL_ID not in first_index:
        issues.append(CatalogIssue(REQUIRED_MODEL_ID, "id", "required model is missing"))
    return issues
