"""Tests for the model catalog, its loader, input validation and pricing."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.catalog import (
    CATALOG_PATH,
    Catalog,
    CatalogError,
    InputError,
    InputField,
    LocalizedText,
    Model,
    PricingError,
    Sku,
    get_catalog,
    load_catalog,
    price_kopecks,
    select_sku,
)

REAL = load_catalog()
TEXT = LocalizedText(ru="т", en="t")
SAMPLE_URL = "https://tempfile.kie.example/u/a.png"

Doc = dict[str, Any]


def make_model(skus: list[Sku], inputs: list[InputField] | None = None) -> Model:
    """Return an in-memory model for pricing tests."""
    return Model(
        id="test-model",
        kie_model="test-model",
        endpoint="/api/v1/jobs/createTask",
        category="image",
        model_type="text_to_image",
        title=TEXT,
        description=TEXT,
        inputs=tuple(inputs or ()),
        skus=tuple(skus),
    )


def sku(price: str, **params: object) -> Sku:
    """Return a per-image SKU for params."""
    return Sku(params=MappingProxyType(params), price_rub=Decimal(price), unit="image")


RES = InputField(name="res", type="enum", values=("1K", "2K"), default="1K")
DUR = InputField(name="dur", type="enum", values=("5", "10"))

FORM = make_model(
    [sku("1.00")],
    [
        InputField(name="prompt", type="string", required=True, min_length=3, max_length=10),
        InputField(name="ratio", type="enum", required=True, default="1:1", values=("1:1", "16:9")),
        InputField(name="count", type="int", min=1, max=4, default=1),
        InputField(name="strength", type="float", min=0, max=1),
        InputField(name="sound", type="bool", default=False),
        InputField(name="tail_image_url", type="image_url"),
        InputField(name="images", type="array", item_type="image_url", required=True, max_items=2),
    ],
)


def minimal_doc() -> Doc:
    """Return a small valid catalog document with z-image and one priced video model."""
    text = {"ru": "т", "en": "t"}
    return {
        "version": 1,
        "currency": "RUB",
        "models": [
            {
                "id": "z-image",
                "kie_model": "z-image",
                "endpoint": "/api/v1/jobs/createTask",
                "category": "image",
                "model_type": "text_to_image",
                "title": text,
                "description": text,
                "inputs": [
                    {"name": "prompt", "type": "string", "required": True, "max_length": 1000},
                    {
                        "name": "aspect_ratio",
                        "type": "enum",
                        "required": True,
                        "default": "1:1",
                        "values": ["1:1", "4:3"],
                    },
                ],
                "skus": [
                    {"params": {"aspect_ratio": "1:1"}, "price_rub": "0.63", "unit": "image"},
                    {"params": {"aspect_ratio": "4:3"}, "price_rub": "0.63", "unit": "image"},
                ],
            },
            {
                "id": "veo3",
                "kie_model": "veo3",
                "endpoint": "/api/v1/jobs/createTask",
                "category": "video",
                "model_type": "text_to_video",
                "title": text,
                "description": text,
                "inputs": [
                    {"name": "prompt", "type": "string", "required": True},
                    {"name": "resolution", "type": "enum", "values": ["720p", "1080p"]},
                ],
                "skus": [
                    {"params": {"resolution": "720p"}, "price_rub": "10.00", "unit": "video"},
                    {"params": {"resolution": "1080p"}, "price_rub": "20.00", "unit": "video"},
                ],
            },
        ],
    }


def write(tmp_path: Path, doc: Doc) -> Path:
    """Write doc as a catalog file and return its path."""
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(doc))
    return path


def minimal_params(model: Model) -> dict[str, object]:
    """Return valid values for the required fields that have no default."""
    samples: dict[str, object] = {
        "string": "a red fox",
        "image_url": SAMPLE_URL,
        "video_url": "https://tempfile.kie.example/u/a.mp4",
        "audio_url": "https://tempfile.kie.example/u/a.mp3",
    }
    params: dict[str, object] = {}
    for f in model.inputs:
        if not f.required or f.default is not None:
            continue
        if f.type == "array":
            params[f.name] = [samples[f.item_type or "string"]]
        elif f.type == "enum":
            params[f.name] = f.values[0]
        else:
            params[f.name] = samples[f.type]
    return params


# --- the real catalog -------------------------------------------------------------------------


def test_the_real_catalog_loads_with_exactly_73_models() -> None:
    assert isinstance(REAL, Catalog)
    assert len(REAL) == 73
    assert len({m.id for m in REAL.models}) == 73


def test_the_real_catalog_keeps_file_order() -> None:
    raw = orjson.loads(CATALOG_PATH.read_bytes())
    assert [m.id for m in REAL.models] == [m["id"] for m in raw["models"]]
    assert REAL.models[0].id == "z-image"


def test_z_image_has_its_endpoint_price_and_input_schema() -> None:
    model = REAL.get("z-image")
    assert model is not None
    assert model.kie_model == "z-image"
    assert model.endpoint == "/api/v1/jobs/createTask"
    assert model.category == "image"
    assert model.free
    assert [f.name for f in model.inputs] == ["prompt", "aspect_ratio"]
    prompt, ratio = model.inputs
    assert prompt.type == "string" and prompt.required and prompt.max_length == 1000
    assert ratio.type == "enum" and ratio.default == "1:1"
    assert ratio.values == ("1:1", "4:3", "3:4", "16:9", "9:16")
    chosen = select_sku(model, {"prompt": "cat"})
    assert chosen.price_rub == Decimal("0.63") and chosen.unit == "image" and chosen.free


def test_get_returns_none_for_an_unknown_model() -> None:
    assert REAL.get("no-such-model") is None
    assert "no-such-model" not in REAL
    with pytest.raises(KeyError):
        REAL["no-such-model"]


def test_prices_are_exact_decimals() -> None:
    for model in REAL:
        for s in model.skus:
            assert isinstance(s.price_rub, Decimal) and s.price_rub > 0


def test_every_sku_params_select_that_sku() -> None:
    for model in REAL:
        for s in model.skus:
            assert select_sku(model, s.params) is s, model.id


def test_every_model_accepts_and_prices_a_minimal_request() -> None:
    for model in REAL:
        clean = model.validate_params(minimal_params(model))
        assert price_kopecks(model, clean, Decimal(1)) > 0, model.id


def test_get_catalog_loads_once_per_process() -> None:
    assert get_catalog() is get_catalog()
    assert len(get_catalog()) == 73


# --- pricing ----------------------------------------------------------------------------------


def test_price_rounds_up_to_the_kopeck_with_markup_two() -> None:
    model = make_model([sku("0.6351")])
    # 0.6351 RUB * 100 * 2 = 127.02 kopecks -> 128
    assert price_kopecks(model, {}, Decimal("2.0")) == 128


def test_price_with_an_odd_markup_rounds_up() -> None:
    z_image = REAL["z-image"]
    # 0.63 RUB * 100 * 1.37 = 86.31 kopecks -> 87
    assert price_kopecks(z_image, {"aspect_ratio": "4:3"}, Decimal("1.37")) == 87


def test_an_exact_kopeck_amount_is_not_rounded_further() -> None:
    assert price_kopecks(make_model([sku("5.00")]), {}, Decimal("1.37")) == 685
    assert price_kopecks(REAL["z-image"], {}, Decimal(2)) == 126


def test_the_most_specific_matching_sku_wins() -> None:
    model = make_model(
        [sku("10.00"), sku("20.00", res="1K"), sku("30.00", res="1K", dur="5")], [RES, DUR]
    )
    assert price_kopecks(model, {"res": "1K", "dur": "5"}, Decimal(1)) == 3000
    assert price_kopecks(model, {"res": "1K", "dur": "10"}, Decimal(1)) == 2000
    assert price_kopecks(model, {"res": "2K"}, Decimal(1)) == 1000


def test_defaults_are_filled_before_choosing_a_sku() -> None:
    model = make_model([sku("1.00", res="1K"), sku("2.00", res="2K")], [RES])
    assert select_sku(model, {}).price_rub == Decimal("1.00")
    nano = REAL["nano-banana-pro"]
    assert select_sku(nano, {"prompt": "x"}).params == {"resolution": "1K"}


def test_equally_specific_matches_resolve_to_the_first_in_file_order() -> None:
    model = make_model([sku("1.00", res="1K"), sku("2.00", dur="5")], [RES, DUR])
    assert select_sku(model, {"res": "1K", "dur": "5"}).price_rub == Decimal("1.00")


def test_an_unknown_params_combination_raises_pricing_error() -> None:
    hailuo = REAL["hailuo/2.3"]
    with pytest.raises(PricingError) as caught:
        price_kopecks(hailuo, {"duration": "10", "resolution": "1080p"}, Decimal(2))
    assert caught.value.model_id == "hailuo/2.3"
    assert caught.value.params == {"duration": "10", "resolution": "1080p"}
    assert "hailuo/2.3" in str(caught.value) and "1080p" in str(caught.value)


def test_a_bool_sku_param_does_not_match_an_integer() -> None:
    kling = REAL["kling-2.6/text-to-video"]
    assert select_sku(kling, {"sound": True, "duration": "5"}).price_rub == Decimal("86.43")
    with pytest.raises(PricingError):
        select_sku(kling, {"sound": 1, "duration": "5"})


def test_a_free_sku_still_reports_its_price() -> None:
    ideogram = REAL["ideogram/v3-text-to-image"]
    turbo = select_sku(ideogram, {"rendering_speed": "TURBO"})
    assert turbo.free and turbo.price_rub == Decimal("2.75")
    assert price_kopecks(ideogram, {"rendering_speed": "TURBO"}, Decimal(2)) == 550
    assert not select_sku(ideogram, {"rendering_speed": "QUALITY"}).free
    assert not ideogram.free


@pytest.mark.parametrize("markup", [2.0, Decimal(0), Decimal(-1), Decimal("NaN"), Decimal("Inf")])
def test_a_float_or_non_positive_markup_is_rejected(markup: Any) -> None:
    with pytest.raises(ValueError, match="markup"):
        price_kopecks(REAL["z-image"], {}, markup)


SKU_CASES = [(m, s) for m in REAL for s in m.skus]


@given(
    case=st.sampled_from(SKU_CASES),
    markup=st.decimals(min_value="0.01", max_value="100", places=4, allow_nan=False),
)
def test_the_price_is_the_exact_product_rounded_up_by_less_than_a_kopeck(
    case: tuple[Model, Sku], markup: Decimal
) -> None:
    model, s = case
    exact = s.price_rub * 100 * markup
    charged = price_kopecks(model, model.with_defaults(s.params), markup)
    assert exact <= charged < exact + 1
    assert charged == int(exact.to_integral_value(rounding=ROUND_CEILING))


# --- validate_params --------------------------------------------------------------------------


def test_validate_params_fills_defaults_and_keeps_field_order() -> None:
    clean = FORM.validate_params({"images": [SAMPLE_URL], "prompt": "a fox", "strength": None})
    assert clean == {
        "prompt": "a fox",
        "ratio": "1:1",
        "count": 1,
        "sound": False,
        "images": [SAMPLE_URL],
    }
    assert list(clean) == ["prompt", "ratio", "count", "sound", "images"]


def test_validate_params_accepts_every_kind_of_good_value() -> None:
    params = {
        "prompt": "a fox",
        "ratio": "16:9",
        "count": 4,
        "strength": 0.5,
        "sound": True,
        "tail_image_url": SAMPLE_URL,
        "images": (SAMPLE_URL, SAMPLE_URL),
    }
    clean = FORM.validate_params(params)
    assert clean == {**params, "images": [SAMPLE_URL, SAMPLE_URL]}


GOOD: dict[str, object] = {"prompt": "a fox", "images": [SAMPLE_URL]}


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"prompt": None}, "prompt", "is required"),
        ({"images": None}, "images", "is required"),
        ({"seed": 1}, "seed", "is not a parameter of this model"),
        ({"prompt": 42}, "prompt", "must be a string, not int"),
        ({"prompt": "   "}, "prompt", "must not be empty"),
        ({"prompt": "ab"}, "prompt", "is 2 characters, at least 3"),
        ({"prompt": "x" * 11}, "prompt", "is 11 characters, at most 10"),
        ({"ratio": "5:4"}, "ratio", "'5:4' is not one of ['1:1', '16:9']"),
        ({"count": 5}, "count", "5 is above the maximum 4"),
        ({"count": 0}, "count", "0 is below the minimum 1"),
        ({"count": 2.0}, "count", "must be an integer, not 2.0"),
        ({"count": True}, "count", "must be an integer, not bool"),
        ({"strength": "0.5"}, "strength", "must be a number, not str"),
        ({"strength": math.nan}, "strength", "must be a finite number"),
        ({"strength": 1.5}, "strength", "1.5 is above the maximum 1"),
        ({"sound": 1}, "sound", "must be true or false, not int"),
        ({"tail_image_url": "file:///etc/passwd"}, "tail_image_url", "must be an http(s) URL"),
        ({"images": SAMPLE_URL}, "images", "must be a list, not str"),
        ({"images": []}, "images", "needs at least one item"),
        ({"images": [SAMPLE_URL] * 3}, "images", "has 3 items, at most 2"),
        ({"images": [SAMPLE_URL, "not a url"]}, "images[1]", "must be an http(s) URL"),
    ],
)
def test_validate_params_rejects_bad_input(
    changes: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(InputError) as caught:
        FORM.validate_params({**GOOD, **changes})
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{field}: ")


# --- broken catalog files ---------------------------------------------------------------------

Mutation = Callable[[Doc], None]


def price_as_float(doc: Doc) -> None:
    doc["models"][1]["skus"][0]["price_rub"] = 10.0


def drop_endpoint(doc: Doc) -> None:
    del doc["models"][1]["endpoint"]


def sku_names_missing_field(doc: Doc) -> None:
    doc["models"][1]["skus"][1]["params"]["quality"] = "basic"


def sku_has_bad_enum_value(doc: Doc) -> None:
    doc["models"][1]["skus"][1]["params"]["resolution"] = "8K"


def default_not_in_values(doc: Doc) -> None:
    doc["models"][0]["inputs"][1]["default"] = "5:4"


def duplicate_id(doc: Doc) -> None:
    doc["models"].append(copy.deepcopy(doc["models"][1]))


def no_skus(doc: Doc) -> None:
    doc["models"][1]["skus"] = []


def no_z_image(doc: Doc) -> None:
    del doc["models"][0]


def identical_skus(doc: Doc) -> None:
    doc["models"][1]["skus"][1]["params"] = {"resolution": "720p"}


def category_mismatch(doc: Doc) -> None:
    doc["models"][1]["category"] = "audio"


def sku_priced_by_free_text(doc: Doc) -> None:
    doc["models"][1]["skus"][0]["params"]["prompt"] = "cat"


@pytest.mark.parametrize(
    ("mutate", "model_id", "field", "reason"),
    [
        (price_as_float, "veo3", "skus[0].price_rub", "is not of type 'string'"),
        (drop_endpoint, "veo3", "endpoint", "'endpoint' is a required property"),
        (sku_names_missing_field, "veo3", "skus[1].params.quality", "is not an input"),
        (sku_has_bad_enum_value, "veo3", "skus[1].params.resolution", "'8K' is not one of"),
        (default_not_in_values, "z-image", "inputs[1].default", "'5:4' is not one of"),
        (duplicate_id, "veo3", "id", "duplicate id (models[1] and models[2])"),
        (no_skus, "veo3", "skus", "should be non-empty"),
        (no_z_image, "z-image", "id", "required model is missing"),
        (identical_skus, "veo3", "skus[1].params", "same params as skus[0]"),
        (category_mismatch, "veo3", "category", "does not match model_type"),
        (sku_priced_by_free_text, "veo3", "skus[0].params.prompt", "cannot select a price"),
    ],
)
def test_a_broken_catalog_raises_catalog_error_naming_model_and_field(
    tmp_path: Path, mutate: Mutation, model_id: str, field: str, reason: str
) -> None:
    doc = minimal_doc()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    error = caught.value
    assert len(error.issues) == 1, str(error)
    assert (error.model_id, error.field) == (model_id, field)
    assert reason in error.reason
    assert str(error) == f"{path}: model {model_id!r} field {field!r}: {error.reason}"


def test_the_minimal_catalog_used_by_these_tests_is_valid(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, minimal_doc()))
    assert [m.id for m in catalog] == ["z-image", "veo3"]


def test_invalid_json_raises_catalog_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"version": 1,', encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    assert str(caught.value).startswith(f"{path}: invalid JSON")
    assert caught.value.model_id is None


def test_a_missing_file_raises_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the file"):
        load_catalog(tmp_path / "absent.json")


def test_a_non_object_document_raises_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_bytes(b"[]")
    with pytest.raises(CatalogError, match="is not of type 'object'"):
        load_catalog(path)


def test_all_problems_are_listed_in_one_error(tmp_path: Path) -> None:
    doc = minimal_doc()
    duplicate_id(doc)  # models[2] is a second 'veo3'
    price_as_float(doc)  # schema problem in models[1]
    default_not_in_values(doc)  # semantic problem in models[0]
    doc["models"][2]["skus"][1]["params"]["resolution"] = "8K"  # semantic problem in models[2]
    path = write(tmp_path, doc)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    found = {(i.model_id, i.field) for i in caught.value.issues}
    assert found == {
        ("veo3", "skus[0].price_rub"),
        ("z-image", "inputs[1].default"),
        ("veo3", "skus[1].params.resolution"),
        ("veo3", "id"),
    }
    text = str(caught.value)
    assert text.startswith(f"{path}: 4 problems:")
    assert text.count("\n  - model ") == 4


def test_the_error_names_the_repo_relative_file_model_and_field() -> None:
    error = CatalogError(
        CATALOG_PATH, "veo3", "skus[2].params.resolution", "'8K' is not one of ['720p', '1080p']"
    )
    assert str(error) == (
        "models/catalog.json: model 'veo3' field 'skus[2].params.resolution': "
        "'8K' is not one of ['720p', '1080p']"
    )
