"""Every string field of every request the registry process serves (RegistryService,
DatasetService, Operations) takes random text with NUL, control and surrogate characters:
never INTERNAL or UNKNOWN, the server stays SERVING, and a refused request writes no row and
no file.

The string fields are found by walking the request descriptors, so a field added later is
covered without touching this test. Python's protobuf refuses to serialise a lone surrogate,
but other clients can send its (invalid) UTF-8 bytes: those are spliced into the serialised
request, which then reaches the server as such a client would send it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import registry_data_dir
from dataset_mesh import Mesh, photo, running_registry
from google.longrunning import operations_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentic_labeling.v1 import common_pb2, dataset_pb2, registry_pb2

_SERVICES: tuple[ServiceDescriptor, ...] = (
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    dataset_pb2.DESCRIPTOR.services_by_name["DatasetService"],
    operations_pb2.DESCRIPTOR.services_by_name["Operations"],
)
_MAX_DEPTH = 4
_BAD = ("\x00", "\ud800", "\udfff", "\x01", "\x1f", "\x7f", "\x85", "\u200b", "\ufeff", "\n")


@dataclass(frozen=True)
class StringField:
    """One string field of a request: a path of (field name, kind) steps from the request."""

    method: str  # /package.Service/Method
    request_type: type[Message]
    path: tuple[str, ...]
    kind: str  # "scalar", "repeated", "map_key", "map_value"

    def set(self, request: Message, text: str) -> None:
        parent: Any = request
        for name in self.path[:-1]:
            child = getattr(parent, name)
            if hasattr(child, "add"):  # a repeated message field: its first element
                child = child[0] if len(child) else child.add()
            parent = child
        leaf = self.path[-1]
        if self.kind == "scalar":
            setattr(parent, leaf, text)
        elif self.kind == "repeated":
            getattr(parent, leaf).append(text)
        elif self.kind == "map_key":
            _ = getattr(parent, leaf)[text]  # inserts the value type's default
        else:
            getattr(parent, leaf)["key"] = text

    def __str__(self) -> str:
        return f"{self.method.rsplit('/', 1)[-1]}.{'.'.join(self.path)} ({self.kind})"


def _string_paths(descriptor: Descriptor, depth: int = 0) -> Iterator[tuple[tuple[str, ...], str]]:
    for field in descriptor.fields:
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_STRING:
            yield (field.name,), "repeated" if repeated else "scalar"
        elif field.type == FieldDescriptor.TYPE_MESSAGE and depth < _MAX_DEPTH:
            message = field.message_type
            if message.GetOptions().map_entry:
                key, value = message.fields_by_name["key"], message.fields_by_name["value"]
                if key.type == FieldDescriptor.TYPE_STRING:
                    yield (field.name,), "map_key"
                if value.type == FieldDescriptor.TYPE_STRING:
                    yield (field.name,), "map_value"
                continue
            for path, kind in _string_paths(message, depth + 1):
                yield (field.name, *path), kind


def _message_class(descriptor: Descriptor) -> type[Message]:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


STRING_FIELDS: tuple[StringField, ...] = tuple(
    StringField(
        method=f"/{service.full_name}/{method.name}",
        request_type=_message_class(method.input_type),
        path=path,
        kind=kind,
    )
    for service in _SERVICES
    for method in service.methods
    for path, kind in _string_paths(method.input_type)
)


def test_the_walk_finds_the_string_fields_of_every_method() -> None:
    methods = {f.method.rsplit("/", 1)[-1] for f in STRING_FIELDS}
    assert {"CreateSource", "BatchCreateObjects", "ListObjects", "ImportLabels"} <= methods
    paths = {str(f) for f in STRING_FIELDS}
    assert "CreateSource.source.display_name (scalar)" in paths
    assert "BatchCreateObjects.requests.object.attributes (map_key)" in paths
    assert "ValidateObjects.validated_by (scalar)" in paths
    assert "UpdateCategory.update_mask.paths (repeated)" in paths


def _wire_bytes(field: StringField, base: Message, text: str) -> bytes:
    """`base` with `text` in `field`, serialised; a text Python's protobuf refuses (a lone
    surrogate) is spliced in as the bytes another client would send."""
    raw = text.encode("utf-8", "surrogatepass")
    try:
        request = _copy(base)
        field.set(request, text)
        return request.SerializeToString()
    except (UnicodeEncodeError, ValueError):
        pass
    # Two placeholders of the raw text's length: where their serialisations differ is it.
    encoded = []
    for letter in ("a", "b"):
        request = _copy(base)
        field.set(request, letter * len(raw))
        encoded.append(request.SerializeToString())
    first, second = encoded
    start = next(i for i, (x, y) in enumerate(zip(first, second, strict=True)) if x != y)
    return first[:start] + raw + first[start + len(raw) :]


def _copy(message: Message) -> Message:
    copied = type(message)()
    copied.CopyFrom(message)
    return copied


@dataclass(frozen=True)
class Written:
    """What a request could have written: rows counted through the API, files on disk."""

    sources: int
    objects: int
    categories: int
    datasets: int
    files: int


def _written(mesh: Mesh, data_dir: Path) -> Written:
    registry = mesh.registry
    categories = registry.ListCategories(
        registry_pb2.ListCategoriesRequest(page_size=1000), timeout=30
    )
    datasets = mesh.datasets.ListDatasets(dataset_pb2.ListDatasetsRequest(page_size=1000))
    return Written(
        sources=registry.ListSources(registry_pb2.ListSourcesRequest(), timeout=30).total_size,
        objects=registry.ListObjects(registry_pb2.ListObjectsRequest(), timeout=30).total_size,
        categories=len(categories.categories),
        datasets=len(datasets.datasets),
        files=sum(
            1
            for folder in ("images", "masks", "exports")
            for p in (data_dir / folder).rglob("*")
            if p.is_file()
        ),
    )


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    directories = registry_data_dir()
    yield next(directories)
    next(directories, None)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Mesh]:
    with running_registry(tmp_path_factory.mktemp("registry"), data_dir) as mesh:
        yield mesh


@pytest.fixture(scope="module")
def bases(mesh: Mesh) -> dict[str, Message]:
    """A request per method that would succeed (or fail only for want of a resource), so the
    random text meets the checks of the field it is in, not an earlier refusal."""
    registry = mesh.registry
    source = registry.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(kind=common_pb2.SOURCE_KIND_IMAGE, width=96, height=64),
            image_data=photo(1),
        ),
        timeout=30,
    )
    video = registry.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(kind=common_pb2.SOURCE_KIND_VIDEO, width=96, height=64)
        ),
        timeout=30,
    )
    box = common_pb2.BoundingBox(x=1, y=1, width=10, height=10)
    created = registry.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source.name, category_name="ring", bbox=box, confidence=0.5
                    )
                )
            ],
        ),
        timeout=30,
    )
    obj = created.objects[0]
    missing = uuid.uuid4()
    return {
        "CreateSource": registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(kind=common_pb2.SOURCE_KIND_IMAGE, width=96, height=64),
            image_data=photo(2),
            return_existing=True,
        ),
        "CreateFrame": registry_pb2.CreateFrameRequest(
            parent=video.name, frame=registry_pb2.Frame(frame_index=1), image_data=photo(3)
        ),
        "CreateCategory": registry_pb2.CreateCategoryRequest(
            category=registry_pb2.Category(display_name=f"c{uuid.uuid4().hex[:8]}")
        ),
        "UpdateCategory": registry_pb2.UpdateCategoryRequest(
            category=registry_pb2.Category(name=obj.category, display_name="ring"),
            update_mask={"paths": ["display_name"]},
        ),
        "BatchCreateObjects": registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source.name, category_name="ring", bbox=box, confidence=0.5
                    )
                )
            ],
        ),
        "UpdateObject": registry_pb2.UpdateObjectRequest(
            object=registry_pb2.LabeledObject(name=obj.name), update_mask={"paths": ["attributes"]}
        ),
        "ValidateObjects": registry_pb2.ValidateObjectsRequest(
            names=[obj.name], validated_by="tester", is_validated=True
        ),
        "SearchSimilar": registry_pb2.SearchSimilarRequest(
            vector=common_pb2.Embedding(values=[1.0] * 8)
        ),
        "DeleteSource": registry_pb2.DeleteSourceRequest(name=f"sources/{missing}"),
        "DeleteCategory": registry_pb2.DeleteCategoryRequest(name=f"categories/{missing}"),
        "DeleteObject": registry_pb2.DeleteObjectRequest(name=f"objects/{missing}"),
        "CreateDataset": dataset_pb2.CreateDatasetRequest(
            dataset=dataset_pb2.Dataset(display_name="d", class_names=["ring"])
        ),
        "DeleteDataset": dataset_pb2.DeleteDatasetRequest(name=f"datasets/{missing}"),
        "ExportDataset": dataset_pb2.ExportDatasetRequest(
            name=f"datasets/{missing}",
            format=dataset_pb2.EXPORT_FORMAT_COCO,
            output_dir="out",
        ),
        "ImportLabels": dataset_pb2.ImportLabelsRequest(
            format=dataset_pb2.LABEL_FORMAT_COCO,
            path="/nonexistent/instances.json",
            validated_by="tester",
            request_id=str(uuid.uuid4()),
        ),
    }


# Every example holds at least one character the stores cannot hold or a control character.
_TEXT = st.builds(
    lambda before, bad, after: before + bad + after,
    st.text(st.characters(max_codepoint=0x2FFF), max_size=6),
    st.sampled_from(_BAD),
    st.text(st.sampled_from(_BAD) | st.characters(max_codepoint=0x2FFF), max_size=6),
)
# A filter reaches the database only when it parses: the text goes inside a string literal.
_FILTER_FIELD = {"ListSources": "display_name", "ListCategories": "display_name"}


def _filter(method: str, text: str) -> str:
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'{_FILTER_FIELD.get(method, "category")} = "{quoted}"'


@pytest.mark.parametrize("field", STRING_FIELDS, ids=str)
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@example(text="\x00")
@example(text="a\ud800b")
@given(text=_TEXT)
def test_random_text_in_any_string_field_is_never_internal_and_a_refusal_writes_nothing(
    mesh: Mesh, data_dir: Path, bases: dict[str, Message], field: StringField, text: str
) -> None:
    name = field.method.rsplit("/", 1)[-1]
    base = _copy(bases.get(name) or field.request_type())
    if name == "CreateSource":  # new bytes each time: a file written by a refusal shows
        base.image_data = photo(uuid.uuid4().int % 2**32)  # type: ignore[attr-defined]
    if field.path[-1] == "filter":
        text = _filter(name, text)
    data = _wire_bytes(field, base, text)
    before = _written(mesh, data_dir)
    code, details = _call(mesh, field.method, data)
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
        f"{field} = {text!r}: {code} {details}"
    )
    if code != grpc.StatusCode.OK:
        assert _written(mesh, data_dir) == before, f"{field} = {text!r} was refused: {code}"


def _call(mesh: Mesh, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
    call: Callable[..., bytes] = mesh.channel.unary_unary(method)
    try:
        call(data, timeout=30)
    except grpc.RpcError as error:
        return error.code(), error.details()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def test_the_server_is_serving_after_the_random_requests(mesh: Mesh) -> None:
    health = health_pb2_grpc.HealthStub(mesh.channel)  # type: ignore[no-untyped-call]
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
