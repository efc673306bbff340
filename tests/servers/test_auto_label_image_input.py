"""AutoLabel on real orchestrator and registry processes, fed images that used to be misread:
decompression bombs and high-bit-depth modes with no faithful 8-bit view. Each fails alone
with a precise reason naming the item's field, before any model is asked (the session's
mesh has no Triton behind it)."""

from __future__ import annotations

import io

import grpc
import numpy as np
from google.rpc import error_details_pb2
from image_samples import declared_png
from PIL import Image
from real_parts import Mesh

from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc


def _tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    return buffer.getvalue()


def _requests(items: dict[str, bytes]) -> list[labeling_pb2.AutoLabelRequest]:
    config = labeling_pb2.AutoLabelRequest(config=labeling_pb2.AutoLabelConfig(class_names=["cat"]))
    return [config] + [
        labeling_pb2.AutoLabelRequest(
            item=labeling_pb2.AutoLabelItem(client_id=key, image=common_pb2.Image(data=data))
        )
        for key, data in items.items()
    ]


def _answer(response: labeling_pb2.AutoLabelResponse) -> tuple[str, str, list[str]]:
    code = next(c for c in grpc.StatusCode if c.value[0] == response.status.code).name
    reason, fields = "", []
    for detail in response.status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return code, reason, fields


def test_bombs_and_unviewable_modes_fail_alone_with_precise_reasons(mesh: Mesh) -> None:
    items = {
        "bomb-20000": declared_png(20_000, 20_000),
        "bomb-60000": declared_png(60_000, 60_000),
        "float": _tiff(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)),
        "int32": _tiff((np.arange(64) * 100_000).reshape(8, 8).astype(np.int32)),
    }
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        responses = list(stub.AutoLabel(iter(_requests(items)), timeout=60))
    found = {r.client_id: _answer(r) for r in responses}
    field = ["item.image.data"]
    assert found == {
        "bomb-20000": ("INVALID_ARGUMENT", "IMAGE_TOO_LARGE", field),
        "bomb-60000": ("INVALID_ARGUMENT", "IMAGE_TOO_LARGE", field),
        "float": ("INVALID_ARGUMENT", "UNSUPPORTED_IMAGE_MODE", field),
        "int32": ("INVALID_ARGUMENT", "UNSUPPORTED_IMAGE_MODE", field),
    }
