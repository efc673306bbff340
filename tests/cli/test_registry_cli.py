"""`alabel search`, `objects list|get|delete`, `stats` and `validate` against a real registry
(embedded Postgres and Qdrant) and, for search by image, a real orchestrator on the real
tritonserver with the tiny models (DINOv2's dimension is 32).

Objects are registered with BatchCreateObjects, with chosen boxes, masks and embeddings, so
every expected answer is known.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from PIL import Image

from agentic_labeling.cli import cli
from agentic_labeling.local_mesh import ManagedProcess, start_server_process, unused_port
from agentic_labeling.models.mask_codec import masks_to_rle
from agentic_labeling.triton_server import TritonHandle
from agentic_labeling.v1 import (
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

pytestmark = pytest.mark.slow

DIM = 32
WIDTH, HEIGHT = 64, 48


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


@dataclass
class Servers:
    registry: ManagedProcess
    orchestrator: ManagedProcess
    stub: registry_pb2_grpc.RegistryServiceStub


@pytest.fixture(scope="module")
def servers(
    served_triton: TritonHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    data_dirs = registry_data_dir()
    workdir = tmp_path_factory.mktemp("registry-cli")
    registry = start_server_process(
        "registry", workdir, ["--data-dir", str(next(data_dirs)), "--embedding-dimension", "32"]
    )
    try:
        orchestrator = start_server_process(
            "orchestrator",
            workdir,
            ["--triton-url", served_triton.address, "--registry-url", registry.address],
        )
        try:
            with grpc.insecure_channel(registry.address) as channel:
                stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
                yield Servers(registry, orchestrator, stub)
        finally:
            orchestrator.stop()
    finally:
        registry.stop()
        next(data_dirs, None)


def alabel(servers: Servers, *args: str, input: str | None = None) -> Result:
    urls = [
        "--registry-url",
        servers.registry.address,
        "--orchestrator-url",
        servers.orchestrator.address,
    ]
    return CliRunner().invoke(cli, [*urls, *args], input=input)


def _unit(values: np.ndarray) -> list[float]:
    return [float(v) for v in values / np.linalg.norm(values)]


def _mask(x: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[5:15, x : x + 10] = True
    return mask


def _source(stub: registry_pb2_grpc.RegistryServiceStub, display_name: str) -> str:
    source = stub.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=WIDTH,
                height=HEIGHT,
                display_name=display_name,
                content_sha256=hashlib.sha256(display_name.encode()).hexdigest(),
            ),
            return_existing=True,
        ),
        timeout=30,
    )
    return str(source.name)


def _create(
    stub: registry_pb2_grpc.RegistryServiceStub,
    source: str,
    objects: list[tuple[str, int, float, list[float]]],
) -> list[str]:
    """Objects (category, x, confidence, embedding) with a 10x10 box and mask at x."""
    response = stub.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source,
                        category_name=category,
                        bbox=common_pb2.BoundingBox(x=x, y=5, width=10, height=10),
                        confidence=confidence,
                        detection_model="test",
                    ),
                    mask=common_pb2.Mask(
                        rle=common_pb2.RunLengthEncoding(
                            height=HEIGHT, width=WIDTH, counts=masks_to_rle(_mask(x))
                        )
                    ),
                    embedding=common_pb2.Embedding(values=vector),
                )
                for category, x, confidence, vector in objects
            ],
        ),
        timeout=30,
    )
    return [o.name for o in response.objects]


@dataclass
class Seeded:
    cat: str  # street.png
    cat_twin: str  # street.png, embedding close to `cat`'s
    dog: str  # street.png
    park_dog: str  # park.png
    query_dog: str  # park.png, embedding = the orchestrator's Embed of `query_image`
    query_image: Path


@pytest.fixture(scope="module")
def seeded(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    rng = np.random.default_rng(7)
    base = rng.normal(size=DIM)
    query_image = tmp_path_factory.mktemp("query") / "query.png"
    pixels = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(query_image)
    with grpc.insecure_channel(servers.orchestrator.address) as channel:
        labeling = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        embedded = labeling.Embed(
            labeling_pb2.EmbedRequest(image=common_pb2.Image(data=query_image.read_bytes())),
            timeout=60,
        )
    street = _source(servers.stub, "street.png")
    park = _source(servers.stub, "park.png")
    cat, cat_twin, dog = _create(
        servers.stub,
        street,
        [
            ("cat", 0, 0.9, _unit(base)),
            ("cat", 20, 0.6, _unit(base + 0.05 * rng.normal(size=DIM))),
            ("dog", 40, 0.7, _unit(rng.normal(size=DIM))),
        ],
    )
    park_dog, query_dog = _create(
        servers.stub,
        park,
        [
            ("dog", 5, 0.8, _unit(rng.normal(size=DIM))),
            ("dog", 30, 0.95, list(embedded.embeddings[0].values)),
        ],
    )
    return Seeded(cat, cat_twin, dog, park_dog, query_dog, query_image)


def _id(name: str) -> str:
    return name.split("/", 1)[1]


def _get(servers: Servers, name: str) -> registry_pb2.LabeledObject:
    return servers.stub.GetObject(registry_pb2.GetObjectRequest(name=name), timeout=30)


# --- search ----------------------------------------------------------------------------------


def test_search_by_object_id_lists_the_nearest_objects_without_itself(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(servers, "search", "--like", _id(seeded.cat), "--top-k", "3")
    assert result.exit_code == 0, result.output
    header, first, *rest = result.stdout.splitlines()
    assert header.split() == ["SCORE", "OBJECT", "CATEGORY", "SOURCE", "CONF"]
    assert first.split()[1:] == [_id(seeded.cat_twin), "cat", "street.png", "0.600"]
    assert float(first.split()[0]) > 0.9
    assert len(rest) == 2
    assert _id(seeded.cat) not in result.stdout


def test_search_by_image_embeds_it_on_the_orchestrator_and_finds_the_same_vector(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(servers, "search", "--like", str(seeded.query_image), "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["query"] == {"image": str(seeded.query_image)}
    best = found["results"][0]
    assert best["object"]["name"] == seeded.query_dog
    assert best["score"] == pytest.approx(1.0, abs=1e-4)


def test_search_applies_the_filter_inside_the_search(servers: Servers, seeded: Seeded) -> None:
    result = alabel(
        servers, "search", "--like", seeded.cat, "--filter", 'category = "dog"', "--json"
    )
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert results
    assert {r["object"]["category_name"] for r in results} == {"dog"}
    assert json.loads(result.stdout)["query"] == {"object": seeded.cat}


def test_search_exact_scan_finds_the_same_nearest_object(servers: Servers, seeded: Seeded) -> None:
    result = alabel(servers, "search", "--like", seeded.cat, "--exact", "--top-k", "1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["object"]["name"] == seeded.cat_twin


def test_search_like_neither_an_object_id_nor_a_file_is_a_usage_error(servers: Servers) -> None:
    result = alabel(servers, "search", "--like", "no-such-thing")
    assert result.exit_code == 2
    assert "'no-such-thing' is neither an object id" in result.stderr


def test_search_with_nothing_similar_says_so(servers: Servers, seeded: Seeded) -> None:
    result = alabel(servers, "search", "--like", seeded.cat, "--filter", 'category = "nothing"')
    assert result.exit_code == 0, result.output
    assert result.stdout == "no similar objects found\n"


# --- objects list / get / delete -------------------------------------------------------------


def test_objects_list_shows_matching_objects_with_their_source_file_names(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(
        servers, "objects", "list", "--filter", 'category = "cat"', "--order-by", "confidence desc"
    )
    assert result.exit_code == 0, result.output
    header, *rows, footer = result.stdout.splitlines()
    assert header.split()[:3] == ["OBJECT", "CATEGORY", "CONF"]
    assert [row.split()[0] for row in rows] == [_id(seeded.cat), _id(seeded.cat_twin)]
    assert rows[0].split()[1:] == ["cat", "0.900", "0.0,5.0,10.0,10.0", "street.png", "no"]
    assert footer == "2 of 2 objects"


def test_objects_list_stops_at_the_limit_and_says_more_match(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(servers, "objects", "list", "--limit", "2", "--filter", 'category = "dog"')
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "2 of 3 objects (--limit 2; more match)"


def test_objects_list_json_has_every_object_with_proto_field_names(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(
        servers,
        "objects",
        "list",
        "--filter",
        'source = "' + _get(servers, seeded.park_dog).source + '"',
        "--json",
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert listed["total_size"] == 2
    assert {o["name"] for o in listed["objects"]} == {seeded.park_dog, seeded.query_dog}
    assert {"category_name", "bbox", "confidence", "is_validated", "has_mask"} <= set(
        listed["objects"][0]
    )


def test_objects_list_with_no_match_says_so(servers: Servers, seeded: Seeded) -> None:
    result = alabel(servers, "objects", "list", "--filter", 'category = "unicorn"')
    assert result.exit_code == 0, result.output
    assert result.stdout == "no objects match the filter\n"


def test_a_bad_filter_is_one_error_line_naming_the_field(servers: Servers) -> None:
    result = alabel(servers, "objects", "list", "--filter", "colour ~ blue")
    assert result.exit_code == 1
    line, *context = result.stderr.splitlines()
    assert line.startswith(f"error: registry at {servers.registry.address}: INVALID_ARGUMENT: ")
    assert line.endswith("(reason: INVALID_FILTER; field: filter)")
    assert context[0].strip() == "colour ~ blue"  # the filter, with a caret under the "~"


def test_objects_get_prints_every_field_and_saves_a_mask_png_that_decodes(
    servers: Servers, seeded: Seeded, tmp_path: Path
) -> None:
    mask_file = tmp_path / "mask.png"
    result = alabel(servers, "objects", "get", _id(seeded.dog), "--save-mask", str(mask_file))
    assert result.exit_code == 0, result.output
    fields = dict(line.split(None, 1) for line in result.stdout.splitlines()[:2])
    assert fields == {"object": seeded.dog, "category": fields["category"]}
    assert "bbox (x,y,w,h)  40.0,5.0,10.0,10.0" in result.stdout
    assert "(street.png)" in result.stdout
    assert f"mask written to {mask_file} ({WIDTH}x{HEIGHT} PNG)" in result.stdout
    with Image.open(io.BytesIO(mask_file.read_bytes())) as png:
        assert png.size == (WIDTH, HEIGHT)
        assert np.array_equal(np.asarray(png) > 0, _mask(40))


def test_objects_get_json_is_the_object_with_its_mask_file(
    servers: Servers, seeded: Seeded, tmp_path: Path
) -> None:
    mask_file = tmp_path / "m.png"
    result = alabel(
        servers, "objects", "get", seeded.park_dog, "--json", "--save-mask", str(mask_file)
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["name"] == seeded.park_dog
    assert shown["category_name"] == "dog"
    assert shown["mask_file"] == str(mask_file)
    assert mask_file.stat().st_size > 0


def test_objects_get_of_an_unknown_object_exits_1_with_not_found(servers: Servers) -> None:
    missing = str(uuid.uuid4())
    result = alabel(servers, "objects", "get", missing)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: registry at {servers.registry.address}: NOT_FOUND:")
    assert missing in result.stderr


def test_an_object_id_that_is_not_a_uuid_is_a_usage_error(servers: Servers) -> None:
    result = alabel(servers, "objects", "get", "42")
    assert result.exit_code == 2
    assert "'42' is not an object id" in result.stderr


def test_objects_delete_off_a_terminal_without_yes_is_refused(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(servers, "objects", "delete", seeded.dog)
    assert result.exit_code == 2
    assert "deleting 1 object needs --yes when not run at a terminal" in result.stderr
    assert _get(servers, seeded.dog).name == seeded.dog


def test_objects_delete_removes_each_object_and_reports_the_missing_ones(
    servers: Servers, seeded: Seeded
) -> None:
    source = _source(servers.stub, "to-delete.png")
    first, second = _create(
        servers.stub,
        source,
        [("cat", 0, 0.5, [1.0] + [0.0] * 31), ("cat", 30, 0.5, [0.0, 1.0] + [0.0] * 30)],
    )
    missing = f"objects/{uuid.uuid4()}"
    result = alabel(servers, "objects", "delete", _id(first), second, missing, "--yes")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"deleted {first}", f"deleted {second}"]
    assert "NOT_FOUND" in result.stderr
    for name in (first, second):
        with pytest.raises(grpc.RpcError) as gone:
            _get(servers, name)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND


# --- stats and validate ----------------------------------------------------------------------


def test_stats_counts_objects_per_category_source_and_model(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(servers, "stats", "--filter", 'detection_model = "test" AND category = "dog"')
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("3 objects matching the filter in 2 sources")
    assert "dog       3" in lines
    assert "CONFIDENCE" in lines


def test_stats_json_is_the_registry_stats_message(servers: Servers, seeded: Seeded) -> None:
    result = alabel(servers, "stats", "--filter", 'category = "cat"', "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["object_count"] == 2
    assert [(e["display_name"], e["count"]) for e in found["per_category"]] == [("cat", 2)]
    assert len(found["confidence_histogram"]) == 10


def test_stats_of_nothing_says_zero(servers: Servers) -> None:
    result = alabel(servers, "stats", "--filter", 'category = "unicorn"')
    assert result.exit_code == 0, result.output
    assert result.stdout == "0 objects matching the filter in 0 sources, 0.0% validated\n"


def test_validate_marks_objects_as_validated_by_the_reviewer(
    servers: Servers, seeded: Seeded
) -> None:
    result = alabel(servers, "validate", _id(seeded.cat_twin), "--by", "alice")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 object(s) validated by alice"
    stored = _get(servers, seeded.cat_twin)
    assert (stored.is_validated, stored.validated_by) == (True, "alice")


def test_validate_with_a_category_corrects_it(servers: Servers, seeded: Seeded) -> None:
    result = alabel(servers, "validate", seeded.park_dog, "--by", "bob", "--category", "cat")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 object(s) validated by bob as cat"
    stored = _get(servers, seeded.park_dog)
    assert (stored.category_name, stored.is_validated, stored.validated_by) == ("cat", True, "bob")


def test_validate_with_a_filter_validates_every_match(servers: Servers, seeded: Seeded) -> None:
    query = 'source = "' + _get(servers, seeded.dog).source + '" AND category = "dog"'
    result = alabel(servers, "validate", "--filter", query, "--by", "carol")
    assert result.exit_code == 0, result.output
    assert _get(servers, seeded.dog).validated_by == "carol"
    nothing = alabel(servers, "validate", "--filter", 'category = "unicorn"', "--by", "carol")
    assert nothing.stdout == "no objects match the filter; nothing validated\n"


def test_validate_without_objects_or_filter_is_a_usage_error(servers: Servers) -> None:
    result = alabel(servers, "validate", "--by", "alice")
    assert result.exit_code == 2
    assert "name the objects to validate: OBJECT_ID... or --filter" in result.stderr


def test_validate_to_an_unknown_category_changes_nothing(servers: Servers, seeded: Seeded) -> None:
    result = alabel(servers, "validate", seeded.cat, "--by", "dave", "--category", "zebra")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "error: category 'zebra' does not exist; pass --create-category to create it, or run"
        " `alabel categories create zebra` first"
    )
    assert not _get(servers, seeded.cat).is_validated


def test_an_unreachable_registry_is_one_clear_error_and_exit_1() -> None:
    nowhere = f"127.0.0.1:{unused_port()}"
    result = CliRunner().invoke(cli, ["--registry-url", nowhere, "stats"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(
        f"error: registry at {nowhere} is not reachable (UNAVAILABLE:"
    )
    assert "Traceback" not in result.output
